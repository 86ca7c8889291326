//! The operations t2s computes its own way, behind one backend extension trait
//! ([`backend::T2sBackend`]): their tensor-operation forms (every backend's default), their
//! closed-form backward passes (the `Autodiff` implementation) and the CubeCL kernels that CUDA
//! and wgpu run for some of them. The networks in [`crate::nets`] call only these.

pub mod activation;
pub mod backend;
pub mod batch_norm;
mod contrastive_autodiff;
#[cfg(feature = "cubecl")]
pub mod contrastive_cube;
pub mod conv;
pub mod conv_gemm;
#[cfg(any(feature = "cubecl", feature = "fusion"))]
mod cube_backend;
pub mod depthwise;
mod depthwise_autodiff;
pub mod layer_norm;
pub mod resize;
pub mod token_linear;
