//! The commands a person types: `stock-matrix <lang> server …` started in the
//! background of a script, and `stock-matrix <lang> client <command> --server …`
//! with the options after the command, as in the README.
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_stock-matrix")
}

fn lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

#[test]
fn a_server_started_by_hand_outlives_its_stdin_and_stops_with_its_starter() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    // stdin /dev/null, as for `stock-matrix rust server … &` in a script.
    let mut server = Command::new(bin())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["rust", "server", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = server.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        let _ = tx.send(first);
    });
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server said nothing in 30 s");
    assert_eq!(first.trim(), format!("listening on {addr}"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.try_wait().unwrap().is_none(),
        "a closed stdin must not end a server started by hand"
    );

    let client = |args: &[&str]| {
        Command::new(bin())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .unwrap()
    };
    // Options after the command, as a person writes them.
    let put = client(&["rust", "client", "put", "by-hand", "hello", "--server", &addr]);
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    let got = lines(&client(&[
        "rust",
        "client",
        "get",
        "by-hand",
        "--server",
        &addr,
        "--timeout-ms=5000",
    ]));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["decoded"]["value"], "hello", "{got:?}");
    assert_eq!(got[1]["status"]["code"], "OK", "{got:?}");
    let missing = lines(&client(&["get", "nothing-here", "--server", &addr]));
    assert_eq!(missing.last().unwrap()["status"]["code"], "NOT_FOUND", "{missing:?}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = server.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{status:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(&addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the server outlived the command that started it"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_prints_command_lines_that_work_and_stops_everything_when_stdin_closes() {
    let mut serve = Command::new(bin())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["serve", "--server", "rust", "--tls", "none,mtls"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = serve.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut printed = Vec::new();
    while !printed.last().is_some_and(|l: &String| l.contains("server(s) running")) {
        printed.push(
            rx.recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("serve said only {printed:#?}")),
        );
    }
    assert!(
        printed.last().unwrap().starts_with("2 server(s) running"),
        "{printed:#?}"
    );
    let clients: Vec<&String> = printed
        .iter()
        .filter(|l| l.trim_start().starts_with("stock-matrix rust client"))
        .collect();
    assert_eq!(clients.len(), 2, "{printed:#?}");
    assert!(clients[1].contains("--tls-mode mtls --ca-file"), "{}", clients[1]);
    let mut addrs = Vec::new();
    for line in clients {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        let out = Command::new(bin())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(&words)
            .output()
            .unwrap();
        let got = lines(&out);
        assert_eq!(got.last().unwrap()["status"]["code"], "OK", "{line}: {got:?}");
        addrs.push(words[words.iter().position(|w| *w == "--server").unwrap() + 1].to_string());
    }
    drop(serve.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    while serve.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serve did not stop when its stdin closed");
        std::thread::sleep(Duration::from_millis(50));
    }
    for addr in addrs {
        assert!(
            std::net::TcpStream::connect(&addr).is_err(),
            "a server at {addr} outlived serve"
        );
    }
}
