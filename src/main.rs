//! stock-matrix: a cross-language gRPC conformance matrix runner.
mod codes;
mod proto;
mod reference;
mod script;
mod tls;

use clap::Parser;

#[derive(Parser)]
enum Cli {
    #[command(subcommand)]
    Reference(Ref),
}
#[derive(clap::Subcommand)]
enum Ref {
    Server(reference::server::ServerArgs),
    Client(reference::client::ClientArgs),
}

#[tokio::main]
async fn main() {
    match Cli::parse() {
        Cli::Reference(Ref::Server(a)) => reference::server::run(a).await.unwrap(),
        Cli::Reference(Ref::Client(a)) => std::process::exit(reference::client::run(a).await),
    }
}
