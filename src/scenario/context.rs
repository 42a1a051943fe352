//! Per-iteration copies of the build context, the changes applied to them, and their tar stream.
