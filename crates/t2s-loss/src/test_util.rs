//! Helpers shared by the tests of this crate.

use burn::tensor::{backend::Backend, Tensor};

/// The value of a one-element loss tensor.
pub(crate) fn scalar<Bk: Backend>(t: Tensor<Bk, 1>) -> f64 {
    let v = t.into_data().to_vec::<f32>().unwrap();
    assert_eq!(v.len(), 1, "loss must be a one-element tensor");
    v[0] as f64
}

/// `actual` within `tol` of `expected`, relative to 1 + |expected|.
pub(crate) fn assert_close(actual: f64, expected: f64, tol: f64, what: &str) {
    assert!((actual - expected).abs() <= tol * (1.0 + expected.abs()), "{what}: got {actual}, expected {expected}");
}
