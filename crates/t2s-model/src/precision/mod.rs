//! Mixed precision: the float type a network computes in, as PyTorch's autocast decides it.
//!
//! A network's parameters stay f32 (the master weights the optimiser updates and the teacher's EMA
//! blends). For a bf16 pass, [`compute_copy`] casts them to bf16 *inside* the autodiff graph,
//! so that the gradients flow back through the casts to the f32 parameters, in f32; the
//! segmentor casts its input to the weights' type and its outputs back to f32
//! (`Segmentor::forward`). Normalisation layers keep f32 parameters and compute their statistics
//! in f32 ([`in_f32`]), as does the attention softmax, as autocast does for `layer_norm`,
//! `batch_norm` and `softmax`. Everything else (convolutions, matrix products, GELU, resizing)
//! runs in the input's type. Design and measurements: docs/gpu.md, "Mixed precision".

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

/// The float type of a network's forward and backward passes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 storage; the GPU backends' matrix products may use TF32 units.
    #[default]
    F32,
    /// bf16 activations and weight copies, f32 master weights and normalisation statistics.
    Bf16,
}

impl Precision {
    /// The name in configurations and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }

    /// The tensors' float type.
    pub fn dtype(self) -> FloatDType {
        match self {
            Self::F32 => FloatDType::F32,
            Self::Bf16 => FloatDType::BF16,
        }
    }

    /// Whether `device` of backend `B` computes in this precision (every backend has f32; bf16:
    /// CUDA and Flex, not wgpu, whose WGSL compiler has no bf16 type).
    pub fn supported_on<B: Backend>(self, device: &B::Device) -> bool {
        B::supports_dtype(device, DType::from(self.dtype()))
    }

    /// [`Precision::supported_on`], or why not (for the caller to prefix with its setting).
    pub fn require_on<B: Backend>(self, device: &B::Device) -> Result<(), String> {
        match self.supported_on::<B>(device) {
            true => Ok(()),
            false => Err(format!("the device ({}) has no {self} arithmetic", B::name(device))),
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            _ => Err(format!("unknown precision `{s}`: expected f32 or bf16")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `x` in float type `dtype`: `x` itself when it already is (no graph node), else a cast.
pub fn cast_to<B: Backend, const D: usize>(x: Tensor<B, D>, dtype: DType) -> Tensor<B, D> {
    if x.dtype() == dtype {
        x
    } else {
        x.cast(dtype)
    }
}

/// `f` applied to `x` in f32, its result back in `x`'s type: normalisation statistics and
/// softmax, which autocast keeps in f32.
pub fn in_f32<B: Backend, const D: usize, const E: usize>(x: Tensor<B, D>, f: impl FnOnce(Tensor<B, D>) -> Tensor<B, E>) -> Tensor<B, E> {
    let dtype = x.dtype();
    cast_to(f(cast_to(x, DType::F32)), dtype)
}

/// A copy of `module` whose float parameters are cast to `precision`, except those of
/// normalisation layers (`LayerNorm`, `BatchNorm`), which compute in f32. On an autodiff backend
/// the casts are graph operations, so gradients reach the original (f32) parameters: the copy
/// is for one forward pass, made again for the next. For f32 it is `module` unchanged.
pub fn compute_copy<B: Backend, M: Module<B>>(module: M, precision: Precision) -> M {
    if precision == Precision::F32 {
        return module;
    }
    module.map(&mut CastWeights { dtype: DType::from(precision.dtype()), in_norm: 0 })
}

/// Casts every float parameter outside normalisation layers to `dtype`.
struct CastWeights {
    dtype: DType,
    /// How many normalisation layers enclose the current parameter.
    in_norm: usize,
}

/// Container names (`ModuleMapper::enter_module`) of the layers whose parameters stay f32.
fn is_norm(container_type: &str) -> bool {
    matches!(container_type, "Struct:LayerNorm" | "Struct:BatchNorm")
}

impl<B: Backend> ModuleMapper<B> for CastWeights {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        if is_norm(container_type) {
            self.in_norm += 1;
        }
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        if is_norm(container_type) {
            self.in_norm -= 1;
        }
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if self.in_norm > 0 {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, cast_to(tensor, self.dtype), mapper)
    }
}

/// The float type `module` computes in: that of its first float parameter (a network's first
/// layer is a convolution, whose weight [`compute_copy`] casts); f32 for a module without any.
pub fn weight_dtype<B: Backend, M: Module<B>>(module: &M) -> DType {
    let mut first = FirstDType(None);
    module.visit(&mut first);
    first.0.unwrap_or(DType::F32)
}

struct FirstDType(Option<DType>);

/// Draws every lazily initialised float parameter of `module` (no-op for drawn ones).
pub fn draw_parameters<B: Backend, M: Module<B>>(module: &M) {
    struct Draw;
    impl<B: Backend> burn::module::ModuleVisitor<B> for Draw {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Draw);
}

impl<B: Backend> burn::module::ModuleVisitor<B> for FirstDType {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.0.is_none() {
            self.0 = Some(param.val().dtype());
        }
    }
}

#[cfg(test)]
mod tests;
