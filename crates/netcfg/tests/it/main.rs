//! Integration tests of prodkit-netcfg, one binary (see the workspace style).

mod layering;
mod validation;
