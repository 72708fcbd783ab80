//! The run's data types: TLS axes, cell keys, outcomes and results. Types
//! only: no parsing of files, no effects.
pub mod cell;
pub mod run;
pub mod tls;
