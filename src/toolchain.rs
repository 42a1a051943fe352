//! Toolchain images: pulled under their official names, or built from Debian packages when that fails.
