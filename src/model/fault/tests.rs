use super::*;

fn sends(actions: &[Action]) -> Vec<(u64, usize)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { at_ms, bytes } => Some((*at_ms, bytes.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn latency_delays_and_jitter_never_reorders() {
    let d = Direction {
        latency_ms: 100,
        jitter_ms: 50,
        ..Default::default()
    };
    let mut s = Shaper::new(&d, true, 7);
    let mut last = 0;
    for now in 0..200 {
        for (at, _) in sends(&s.feed(b"x", now)) {
            assert!(at >= now + 50 && at <= now + 150 && at >= last, "{at} at {now}");
            last = at;
        }
    }
}

#[test]
fn slices_and_bandwidth_spread_a_chunk_out() {
    let d = Direction {
        slice_bytes: Some(3),
        slice_delay_ms: 2,
        ..Default::default()
    };
    let mut s = Shaper::new(&d, true, 1);
    assert_eq!(sends(&s.feed(b"abcdefg", 10)), vec![(10, 3), (12, 3), (14, 1)]);
    // The next chunk waits for the last slice.
    assert_eq!(sends(&s.feed(b"h", 11)), vec![(14, 1)]);
    let d = Direction {
        bytes_per_s: Some(1000),
        ..Default::default()
    };
    let mut s = Shaper::new(&d, true, 1);
    assert_eq!(sends(&s.feed(&[0; 500], 0)), vec![(0, 500)]);
    assert_eq!(sends(&s.feed(&[0; 10], 1)), vec![(500, 10)]);
}

#[test]
fn a_reset_cuts_at_its_byte_and_only_on_the_first_connection() {
    let d = Direction {
        reset_after_bytes: Some(5),
        ..Default::default()
    };
    let mut s = Shaper::new(&d, true, 1);
    assert_eq!(sends(&s.feed(b"abc", 0)), vec![(0, 3)]);
    let out = s.feed(b"defgh", 1);
    assert_eq!(
        out,
        vec![
            Action::Send {
                at_ms: 1,
                bytes: b"de".to_vec()
            },
            Action::Reset { at_ms: 1 }
        ]
    );
    assert!(s.feed(b"more", 2).is_empty());
    let mut later = Shaper::new(&d, false, 1);
    assert_eq!(sends(&later.feed(b"abcdefgh", 0)), vec![(0, 8)]);
}

#[test]
fn the_reader_is_paused_before_its_last_bytes_once_and_only_on_the_first_connection() {
    let d = Direction {
        reset_after_bytes: Some(8),
        pause_reader_bytes: Some(3),
        ..Default::default()
    };
    let kinds = |out: Vec<Action>| -> Vec<String> {
        out.into_iter()
            .map(|a| match a {
                Action::Send { bytes, .. } => String::from_utf8(bytes).unwrap(),
                Action::Pause { .. } => "pause".into(),
                Action::Reset { .. } => "reset".into(),
                Action::Close { .. } => "close".into(),
            })
            .collect()
    };
    let mut s = Shaper::new(&d, true, 1);
    assert_eq!(kinds(s.feed(b"abc", 0)), ["abc"]);
    assert_eq!(kinds(s.feed(b"defghij", 1)), ["de", "pause", "fgh", "reset"]);
    let mut s = Shaper::new(&d, true, 1);
    assert_eq!(kinds(s.feed(b"abcde", 0)), ["abcde"]);
    assert_eq!(kinds(s.feed(b"fghij", 1)), ["pause", "fgh", "reset"]);
    let mut later = Shaper::new(&d, false, 1);
    assert_eq!(kinds(later.feed(b"abcdefghij", 0)), ["abcdefghij"]);
}

#[test]
fn a_black_hole_swallows_everything_after_its_byte_or_time() {
    let d = Direction {
        blackhole_after_bytes: Some(4),
        ..Default::default()
    };
    let mut s = Shaper::new(&d, true, 1);
    assert_eq!(sends(&s.feed(b"abcdef", 0)), vec![(0, 4)]);
    assert!(s.holed(1) && s.feed(b"g", 1).is_empty());
    let d = Direction {
        blackhole_after_ms: Some(10),
        ..Default::default()
    };
    let mut s = Shaper::new(&d, true, 1);
    assert_eq!(sends(&s.feed(b"ab", 9)), vec![(9, 2)]);
    assert!(s.feed(b"c", 10).is_empty());
    assert!(!Shaper::new(&d, false, 1).holed(10));
}

#[test]
fn corruption_flips_the_one_byte_at_its_offset() {
    let d = Direction {
        corrupt_at: Some(4),
        ..Default::default()
    };
    let mut s = Shaper::new(&d, true, 1);
    let mut got = Vec::new();
    for chunk in [&b"abc"[..], b"def", b"ghi"] {
        for a in s.feed(chunk, 0) {
            if let Action::Send { bytes, .. } = a {
                got.extend(bytes);
            }
        }
    }
    assert_eq!(got, [b'a', b'b', b'c', b'd', b'e' ^ 0xff, b'f', b'g', b'h', b'i']);
}

#[test]
fn contradictory_faults_are_refused() {
    let mut f = Fault::default();
    assert!(f.check().unwrap_err().contains("names no fault"));
    f.down.reset_after_bytes = Some(1);
    f.down.close_after_bytes = Some(1);
    assert!(f.check().unwrap_err().contains("at most one"));
    f.down.close_after_bytes = None;
    f.down.jitter_ms = 5;
    assert!(f.check().unwrap_err().contains("jitter_ms"));
    f.down.latency_ms = 5;
    assert!(f.check().is_ok() && f.resets());
    f.down.pause_reader_bytes = Some(2);
    assert!(f.check().unwrap_err().contains("needs reset_after_bytes"));
    f.down.reset_after_bytes = Some(2);
    assert!(f.check().is_ok());
    f.up.pause_reader_bytes = Some(1);
    assert!(f.check().unwrap_err().contains("only the client"));
}
