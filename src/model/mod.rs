//! The run's data types: TLS axes, cell keys, outcomes and results, and the
//! network faults a case asks for. No parsing of files, no effects.
pub mod cell;
pub mod fault;
pub mod misbehaviour;
pub mod run;
pub mod tls;
