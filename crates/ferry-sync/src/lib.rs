//! `ferry-sync`: the sync engine (work in progress).
