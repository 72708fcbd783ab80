//! How the reference client reads a step line with its usage-error faults
//! (`--break`): strictly, as the contract says, or as a lenient client would.
use super::ClientFault;
use crate::contract::script::Step;
use serde_json::Value;

/// A step line, read as a client with `faults` reads it: a step field (or a
/// `connection` field) the contract does not define is dropped when a fault
/// says so, and refused otherwise.
pub fn read_step(line: &str, faults: &[ClientFault]) -> Result<Step, serde_json::Error> {
    let drop_step = faults.contains(&ClientFault::UnknownStepFieldsIgnored);
    let drop_conn = faults.contains(&ClientFault::UnknownConnectionFieldsIgnored);
    let strict = serde_json::from_str::<Step>(line);
    let (Err(first), true) = (&strict, drop_step || drop_conn) else {
        return strict;
    };
    let Ok(mut v) = serde_json::from_str::<Value>(line) else {
        return strict;
    };
    let mut error = first.to_string();
    // serde names one unknown field at a time: drop it where it is, and read again.
    while let Some(field) = error.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
        let field = field.to_string();
        let dropped = (drop_step && remove(&mut v, &field))
            || (drop_conn && v.get_mut("connection").is_some_and(|c| remove(c, &field)));
        if !dropped {
            break;
        }
        match serde_json::from_value::<Step>(v.clone()) {
            Ok(step) => return Ok(step),
            Err(e) => error = e.to_string(),
        }
    }
    strict
}

fn remove(v: &mut Value, field: &str) -> bool {
    v.as_object_mut().is_some_and(|o| o.remove(field).is_some())
}

/// The command line as a reference client started with
/// `--break unknown-options-ignored` reads it: an option that `parse` does
/// not know is dropped, with the value after it (a `parse_known_args`).
/// Any other command line is returned as it is.
pub fn known_args(mut args: Vec<String>, parse: impl Fn(&[String]) -> Option<clap::Error>) -> Vec<String> {
    if !args
        .windows(2)
        .any(|w| w[0] == "--break" && w[1] == "unknown-options-ignored")
    {
        return args;
    }
    while let Some(e) = parse(&args).filter(|e| e.kind() == clap::error::ErrorKind::UnknownArgument) {
        let Some(clap::error::ContextValue::String(arg)) = e.get(clap::error::ContextKind::InvalidArg) else {
            break;
        };
        let Some(i) = args.iter().position(|a| a == arg) else {
            break;
        };
        let value = args.get(i + 1).is_some_and(|v| !v.starts_with("--") && v != "script");
        args.drain(i..if value { i + 2 } else { i + 1 });
    }
    args
}

/// A usage error taken as a fatal one: the reason, and exit 1.
pub fn exit_1(why: &str) -> ! {
    note!("error: {why}");
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPO: &str = r#"{"id":"u","method":"Get","timeout_msec":5,"connection":{"server":"s","tls":"none"}}"#;

    #[test]
    fn strict_refuses_what_each_lenient_fault_drops_in_its_own_place_only() {
        assert!(read_step(TYPO, &[]).is_err());
        assert!(read_step(TYPO, &[ClientFault::UnknownStepFieldsIgnored]).is_err());
        assert!(read_step(TYPO, &[ClientFault::UnknownConnectionFieldsIgnored]).is_err());
        let both = [
            ClientFault::UnknownStepFieldsIgnored,
            ClientFault::UnknownConnectionFieldsIgnored,
        ];
        let step = read_step(TYPO, &both).unwrap();
        assert_eq!((step.id.as_str(), step.timeout_ms), ("u", None));
        assert_eq!(step.connection.unwrap().server, "s");
        assert!(read_step("{", &both).is_err());
    }
}
