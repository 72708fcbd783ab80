//! The bundled Rust reference implementation of the contract (tonic): the
//! `rust` language of the matrix, and what the shortcut commands use.
pub mod book;
pub mod client;
pub mod connection;
pub mod faults;
pub mod hooks;
pub mod kv;
pub mod rich;
pub mod server;
pub mod store;
pub mod transport;
