//! Construction and dispatch through the enums.
