//! The contract between the runner and an implementation, as code: the wire
//! types of script steps and output lines, the proto descriptors, the status
//! code names. The runner and the reference both use it.
pub mod bench;
pub mod channel;
pub mod codes;
pub mod plugin;
pub mod proto;
pub mod script;
