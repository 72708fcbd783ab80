//! The effects of a run besides the runner itself: processes (spawning,
//! waiting, killing: only here), builds and toolchains, certificates, the
//! fault proxy, the run folders on disk, the process's limit on open
//! files, and its own executable as a command to start.
pub mod builder;
pub mod certs;
pub mod limits;
pub mod load;
pub mod own_exe;
pub mod process;
pub mod proxy;
pub mod retention;
pub mod run_folder;
