//! The effects of a run besides the runner itself: processes (spawning,
//! waiting, killing: only here), builds and toolchains, certificates, the
//! fault proxy, the run folders on disk, and the process's limit on open
//! files.
pub mod builder;
pub mod certs;
pub mod limits;
pub mod load;
pub mod process;
pub mod proxy;
pub mod retention;
pub mod run_folder;
