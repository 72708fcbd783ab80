//! The effects of a run besides the runner itself: processes (spawning,
//! waiting, killing: only here), builds and toolchains, certificates, the
//! fault proxy, and the run folders on disk.
pub mod builder;
pub mod certs;
pub mod load;
pub mod process;
pub mod proxy;
pub mod retention;
pub mod run_folder;
