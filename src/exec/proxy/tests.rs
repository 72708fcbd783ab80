use super::*;
use crate::model::fault::Direction;

/// An echo server; returns its address.
async fn echo() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn shaping_keeps_every_byte_and_the_latency_shows() {
    let fault = Fault {
        up: Direction {
            latency_ms: 50,
            slice_bytes: Some(3),
            ..Default::default()
        },
        ..Default::default()
    };
    let p = start(&echo().await, &fault, 1).unwrap();
    let mut c = TcpStream::connect(&p.addr).await.unwrap();
    let t = Instant::now();
    c.write_all(b"hello, world").await.unwrap();
    let mut got = vec![0; 12];
    c.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hello, world");
    assert!(t.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn a_server_on_a_unix_socket_is_reached_and_a_reset_still_reaches_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let l = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    reset_then_clean(&format!("unix:{}", path.display())).await;
}

#[tokio::test]
async fn a_reset_reaches_the_client_as_rst_and_the_next_connection_is_clean() {
    reset_then_clean(&echo().await).await;
}

/// Through a proxy to the echo server at `target` that resets the first
/// connection after 4 bytes down: the client gets those 4 bytes, then an
/// RST; the next connection (not faulty) echoes everything.
async fn reset_then_clean(target: &str) {
    let fault = Fault {
        down: Direction {
            reset_after_bytes: Some(4),
            ..Default::default()
        },
        ..Default::default()
    };
    let p = start(target, &fault, 1).unwrap();
    let mut c = TcpStream::connect(&p.addr).await.unwrap();
    c.write_all(b"abcdefgh").await.unwrap();
    let mut got = Vec::new();
    let err = c.read_to_end(&mut got).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    assert_eq!(&got, b"abcd");
    let mut c = TcpStream::connect(&p.addr).await.unwrap();
    c.write_all(b"abcdefgh").await.unwrap();
    let mut got = vec![0; 8];
    c.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"abcdefgh");
    // The journal says what the proxy did, connection by connection.
    drop(c);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lines = p.journal.lines();
    let expected = [
        "conn 1: accepted at",
        "conn 1: reached the server at",
        "conn 1: resetting both sides after 4 bytes to the client (0 not acknowledged, 0 unread by the client, 0 by the server, after waiting",
        "conn 1: done: 8 bytes to the server, 4 to the client at",
        "conn 2: accepted at",
    ];
    for (line, start) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(start),
            "{line:?} should start with {start:?} in {lines:#?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("conn 2: done: 8 bytes to the server, 8 to the client")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn a_black_hole_keeps_the_socket_open_and_silent() {
    let fault = Fault {
        down: Direction {
            blackhole_after_bytes: Some(2),
            ..Default::default()
        },
        ..Default::default()
    };
    let p = start(&echo().await, &fault, 1).unwrap();
    let mut c = TcpStream::connect(&p.addr).await.unwrap();
    c.write_all(b"abcd").await.unwrap();
    let mut got = vec![0; 2];
    c.read_exact(&mut got).await.unwrap();
    let mut more = [0u8; 1];
    let r = tokio::time::timeout(Duration::from_millis(200), c.read(&mut more)).await;
    assert!(r.is_err(), "the black hole let something through: {r:?}");
}

/// A client of an echo server behind a proxy that closes after 3 bytes
/// down, with "abcdef" sent (the proxy is returned to keep it running).
async fn closing_after_three_bytes() -> (Proxy, TcpStream) {
    let fault = Fault {
        down: Direction {
            close_after_bytes: Some(3),
            ..Default::default()
        },
        ..Default::default()
    };
    let p = start(&echo().await, &fault, 1).unwrap();
    let mut c = TcpStream::connect(&p.addr).await.unwrap();
    c.write_all(b"abcdef").await.unwrap();
    (p, c)
}

#[tokio::test]
async fn a_close_ends_the_stream_cleanly() {
    let (_p, mut c) = closing_after_three_bytes().await;
    let mut got = Vec::new();
    c.read_to_end(&mut got).await.unwrap();
    assert_eq!(&got, b"abc");
}

#[tokio::test]
async fn a_close_stays_a_fin_when_the_client_sends_after_it() {
    let (_p, mut c) = closing_after_three_bytes().await;
    let mut got = [0u8; 3];
    c.read_exact(&mut got).await.unwrap();
    // What a gRPC client sends while a response arrives (WINDOW_UPDATE,
    // PING acks): a socket closed with it unread would answer with RST.
    for _ in 0..3 {
        c.write_all(b"more").await.expect("the proxy reads on after its FIN");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).await.expect("a FIN, not a reset");
    assert_eq!(rest, b"");
}

/// A reset with `pause_reader_bytes`: the client process is stopped before
/// the last bytes once it has read those before them, the reset waits for
/// them to be acknowledged only (the client cannot read them), and the
/// client runs again after it.
#[tokio::test]
async fn a_paused_client_gets_its_last_bytes_and_the_reset_unread_then_runs_again() {
    use std::os::unix::process::CommandExt;
    let fault = Fault {
        down: Direction {
            reset_after_bytes: Some(8),
            pause_reader_bytes: Some(4),
            ..Default::default()
        },
        ..Default::default()
    };
    let p = start(&echo().await, &fault, 1).unwrap();
    // Stands in for the client process the runner would have started.
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .unwrap();
    p.pauser.set(sleeper.id() as i32);
    let mut c = TcpStream::connect(&p.addr).await.unwrap();
    c.write_all(b"abcdefghij").await.unwrap();
    let mut got = Vec::new();
    let err = c.read_to_end(&mut got).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    assert_eq!(&got, b"abcdefgh");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lines = p.journal.lines();
    let has = |part: &str| lines.iter().any(|l| l.contains(part));
    assert!(
        has(&format!(
            "paused the client (process group {}) after 4 bytes",
            sleeper.id()
        )) && has("after 4 bytes to the client (0 of them unread")
            && has("unread by the client (paused)")
            && has("resumed the client"),
        "{lines:#?}"
    );
    assert!(!p.pauser.paused());
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}
