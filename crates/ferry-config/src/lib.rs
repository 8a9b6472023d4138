//! `ferry-config`: configuration and schedule (work in progress).
