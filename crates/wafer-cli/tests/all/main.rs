//! Tests that run the real `wafer` binary the way a user does.

mod call;
mod check;
mod hostile;
mod programs;
mod serve;
mod tools;
mod util;
