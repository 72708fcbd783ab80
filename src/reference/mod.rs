//! The bundled Rust reference implementation of the contract (tonic): the
//! `rust` language of the matrix, and what the shortcut commands use.
pub mod bench;
pub mod book;
pub mod cause;
pub mod client;
pub mod connection;
pub mod connector;
pub mod faults;
pub mod filtered;
pub mod frames;
pub mod heedless;
pub mod hooks;
pub mod kv;
pub mod peer;
pub mod reflection;
pub mod rich;
pub mod rude;
pub mod server;
pub mod service;
pub mod store;
pub mod transport;
pub mod wire;
