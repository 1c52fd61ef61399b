//! Black-box tests: the real server on port 0, spoken to over real HTTP.

mod helpers;

mod contract;
