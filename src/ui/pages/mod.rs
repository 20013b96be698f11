//! One module per page (and the fragments its live parts refresh).

pub mod events;
pub mod functions;
pub mod login;
pub mod overview;
pub mod replays;
pub mod run;
pub mod runs;
pub mod users;
