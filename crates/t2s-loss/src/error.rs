//! Errors reported by the loss crate.

/// Errors reported by the loss functions' validation helpers.
///
/// The losses themselves never fail on the hot path (they must stay on the device and on the
/// autodiff graph); data problems are instead detected up front by validators such as
/// [`check_labels`](crate::check_labels). Helpers that take shape or scalar arguments, such as
/// [`downscale_labels_majority`](crate::downscale_labels_majority), validate them on the host
/// (from shapes and scalars only, without reading tensors back) and report them here too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LossError {
    /// A label is neither a valid class index nor the ignore index.
    #[error(
        "label {value} at [n={n}, h={h}, w={w}] is out of range: expected a class in 0..{num_classes} \
         or the ignore index {ignore_index} ({count} offending pixel(s) in total)"
    )]
    LabelOutOfRange {
        /// The first offending label value (in row-major order).
        value: i64,
        /// Batch index of the first offending pixel.
        n: usize,
        /// Row of the first offending pixel.
        h: usize,
        /// Column of the first offending pixel.
        w: usize,
        /// Number of classes `C` the labels were checked against.
        num_classes: usize,
        /// The ignore index that was accepted besides `0..C`.
        ignore_index: usize,
        /// Total number of offending pixels in the tensor.
        count: usize,
    },
    /// The label map's height or width is not a multiple of the downscale factor (see
    /// [`downscale_labels_majority`](crate::downscale_labels_majority)).
    #[error(
        "label map of size {height}x{width} cannot be downscaled by {factor}: \
         height and width must both be multiples of the factor"
    )]
    LabelSizeNotDivisible {
        /// Height `H` of the label map.
        height: usize,
        /// Width `W` of the label map.
        width: usize,
        /// The requested downscale factor.
        factor: usize,
    },
    /// A scalar argument is outside its valid range.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// Name of the offending parameter.
        name: &'static str,
        /// Why it was rejected, including the value.
        reason: String,
    },
}
