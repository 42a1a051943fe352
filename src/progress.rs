//! Terminal reporters: indicatif progress on a TTY, plain log lines otherwise.
