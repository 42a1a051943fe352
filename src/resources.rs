//! Ownership of labelled engine resources, and their removal on success, failure and Ctrl-C.
