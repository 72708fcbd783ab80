//! The contract's `x-stock-*` request-metadata hooks, read once per call
//! (`wire` applies those that work on the HTTP level).
use crate::contract::codes;
use std::time::Duration;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

/// The interop suite's special status message.
pub const SPECIAL_MESSAGE: &str = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";

/// What the metadata of one call asks the server to do.
#[derive(Debug, Default)]
pub struct Hooks {
    pub delay: Option<Duration>,
    pub fail: Option<Status>,
    pub fail_after: u64,
    /// `x-stock-repeat-value`: a Get answers its value this many times over.
    pub repeat_value: u64,
}

fn text<'a>(md: &'a MetadataMap, key: &str) -> Option<&'a str> {
    md.get(key).and_then(|v| v.to_str().ok())
}

impl Hooks {
    pub fn from_metadata(md: &MetadataMap) -> Result<Hooks, Status> {
        let number = |key: &str| -> Result<Option<u64>, Status> {
            text(md, key)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| Status::invalid_argument(format!("{key} must be a number, got {v:?}")))
                })
                .transpose()
        };
        let special = text(md, "x-stock-fail-special") == Some("true");
        let code = match text(md, "x-stock-fail") {
            Some(name) => Some(
                codes::from_name(name)
                    .filter(|c| *c != Code::Ok)
                    .ok_or_else(|| Status::invalid_argument(format!("x-stock-fail: unknown code {name:?}")))?,
            ),
            None if special => Some(Code::Unknown),
            None => None,
        };
        let fail = code.map(|code| {
            let message = if special {
                SPECIAL_MESSAGE.to_string()
            } else if let Some(bytes) = md.get_bin("x-stock-fail-message-bin").and_then(|v| v.to_bytes().ok()) {
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                text(md, "x-stock-fail-message")
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("forced {}", codes::name(code)))
            };
            super::rich::forced(code, message)
        });
        Ok(Hooks {
            delay: number("x-stock-delay-ms")?.map(Duration::from_millis),
            fail,
            fail_after: number("x-stock-fail-after")?.unwrap_or(0),
            repeat_value: number("x-stock-repeat-value")?.unwrap_or(1).max(1),
        })
    }

    /// Sleeps for the requested delay.
    pub async fn delay(&self) {
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
    }
}

/// Parses a `grpc-timeout` value (`100m`, `2S`, …).
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&'static str, &'static str)]) -> MetadataMap {
        let mut m = MetadataMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn fail_takes_code_and_message() {
        let h = Hooks::from_metadata(&md(&[
            ("x-stock-fail", "ABORTED"),
            ("x-stock-fail-message", "boom"),
            ("x-stock-fail-after", "2"),
        ]))
        .unwrap();
        let s = h.fail.unwrap();
        assert_eq!((s.code(), s.message()), (Code::Aborted, "boom"));
        assert_eq!(h.fail_after, 2);
    }

    #[test]
    fn special_defaults_to_unknown() {
        let h = Hooks::from_metadata(&md(&[("x-stock-fail-special", "true")])).unwrap();
        let s = h.fail.unwrap();
        assert_eq!((s.code(), s.message()), (Code::Unknown, SPECIAL_MESSAGE));
    }

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("300m"), Some(Duration::from_millis(300)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
    }

    #[test]
    fn unknown_code_and_bad_numbers_are_invalid_argument() {
        assert!(Hooks::from_metadata(&md(&[("x-stock-fail", "OK")])).is_err());
        assert!(Hooks::from_metadata(&md(&[("x-stock-delay-ms", "soon")])).is_err());
    }
}
