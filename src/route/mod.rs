//! Deciding which app and which rule a request falls under.

pub mod host;
pub mod path;
pub mod rules;
