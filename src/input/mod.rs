//! What a run reads: `matrix.toml` and the case files, parsed and checked
//! (pure: text in, typed values or errors out).
pub mod cases;
pub mod config;
pub mod language;
pub mod macros;
pub mod matchers;
