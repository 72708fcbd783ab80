use super::*;
use crate::model::cell::Net;

const GOOD: &str = r#"
[sets]
unary = "cases/unary.toml"
bidi = "cases/bidi.toml"

[languages.rust]
folder = "implementations/rust"
stack = "tonic"
server = ["{stock-matrix}", "reference", "server"]
client = ["{stock-matrix}", "reference", "client"]

[languages.go]
folder = "implementations/go"
stack = "grpc-go"
requires = ["go"]
build = ["./build.sh"]
server = ["./server"]
client = ["./client"]

[profiles.quick]
clients = ["rust", "go"]
servers = ["*"]
tls = ["none"]
sets = ["unary", "bidi"]
"#;

fn parse(src: &str) -> Result<Matrix, ConfigError> {
    Matrix::parse(src, Path::new("matrix.toml"), Path::new("/repo"))
}

#[test]
fn a_good_file_resolves_names_and_paths() {
    let m = parse(GOOD).unwrap();
    let q = m.profile("quick").unwrap();
    assert_eq!(q.servers, vec!["go", "rust"]);
    assert_eq!(q.tls, vec![TlsMode::None]);
    assert_eq!(q.key_types, vec![KeyType::EcP256]);
    assert_eq!(m.sets["unary"], PathBuf::from("/repo/cases/unary.toml"));
    assert_eq!(m.languages["go"].folder, PathBuf::from("/repo/implementations/go"));
}

#[test]
fn an_unknown_key_names_line_and_key() {
    let src = GOOD.replace("requires = [\"go\"]", "requires = [\"go\"]\nbuild_cmd = \"x\"");
    let err = parse(&src).unwrap_err().to_string();
    assert!(
        err.starts_with("matrix.toml:16:1: languages.go.build_cmd: unknown field `build_cmd`"),
        "{err}"
    );
}

#[test]
fn a_type_error_names_line_and_key() {
    let src = GOOD.replace("stack = \"grpc-go\"", "stack = 3");
    let err = parse(&src).unwrap_err().to_string();
    assert_eq!(
        err,
        "matrix.toml:14:9: languages.go.stack: invalid type: integer `3`, expected a string"
    );
}

#[test]
fn an_unknown_language_in_a_profile_names_line_and_key() {
    let src = GOOD.replace("clients = [\"rust\", \"go\"]", "clients = [\"rust\", \"pyhton\"]");
    let err = parse(&src).unwrap_err().to_string();
    assert!(err.starts_with("matrix.toml:21:20:"), "{err}");
    assert!(
        err.contains("profiles.quick.clients") && err.contains("pyhton"),
        "{err}"
    );
}

#[test]
fn unknown_sets_and_tls_modes_are_errors() {
    let err = parse(&GOOD.replace("\"unary\", \"bidi\"]", "\"unary\", \"nope\"]"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("profiles.quick.sets") && err.contains("nope"), "{err}");
    let err = parse(&GOOD.replace("tls = [\"none\"]", "tls = [\"ssl\"]"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("profiles.quick.tls") && err.contains("ssl"), "{err}");
}

#[test]
fn a_plugin_server_serves_only_and_every_client_leaves_it_out() {
    let plugin = "\n[languages.gp]\nfolder = \"implementations/gp\"\nstack = \"go-plugin\"\nserver = [\"./server\"]\nready = \"go-plugin\"\nuses = [\"go\"]\n[languages.gp.transports]\nunix = {}\ntcp = { T = \"tcp\" }\n";
    let m = parse(&GOOD.replace(
        "[profiles.quick]\nclients = [\"rust\", \"go\"]",
        &format!("{plugin}\n[profiles.quick]\nclients = [\"*\"]"),
    ))
    .unwrap();
    let q = m.profile("quick").unwrap();
    assert_eq!(q.clients, ["go", "rust"]);
    assert_eq!(q.servers, ["go", "gp", "rust"]);
    let gp = &m.languages["gp"];
    assert_eq!(gp.transports.keys().copied().collect::<Vec<_>>(), [Net::Unix, Net::Tcp]);
    assert_eq!(gp.used, [(PathBuf::from("/repo/implementations/go"), vec![])]);
    // Only a plugin may lack a client, and only a plugin has transports.
    let no_client = GOOD.replace("client = [\"./client\"]\n", "");
    assert!(parse(&no_client)
        .unwrap_err()
        .to_string()
        .contains("languages.go: `client` must not be empty"));
    let transports = GOOD.replace(
        "client = [\"./client\"]\n",
        "client = [\"./client\"]\ntransports = { tcp = {} }\n",
    );
    assert!(parse(&transports)
        .unwrap_err()
        .to_string()
        .contains("`transports` are for a plugin server"));
    let uses = GOOD.replace(
        "client = [\"./client\"]\n",
        "client = [\"./client\"]\nuses = [\"gone\"]\n",
    );
    assert!(parse(&uses).unwrap_err().to_string().contains("`uses`: `gone`"));
}

#[test]
fn a_missing_file_is_a_read_error() {
    let err = Matrix::load(Path::new("/nonexistent/matrix.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
}
