//! The renderers that turn a run's data (`model::run`) into files: JUnit,
//! Markdown, JSON. Renderers are pure; the console reporter is the only one
//! that talks to a terminal.
pub mod console;
pub mod cpu;
pub mod floor;
pub mod junit;
pub mod markdown;
pub mod merge;
pub mod resilience;
