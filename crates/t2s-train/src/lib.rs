//! Wiring of networks and data into what users run: today, building a network from a preset,
//! a configuration file or a t2s weight file, loading PyTorch or t2s weights into it, and
//! whole-image inference on image files (`t2s predict`).

pub mod config;
pub mod data_sets;
pub mod error;
pub mod eval_report;
pub mod evaluate;
pub mod fusion_order;
pub mod inference;
pub mod metrics;
pub mod model_source;
pub mod optimizer;
pub mod predict;
pub mod prototype_similarity;
pub mod self_training;
pub mod t2s_term;
pub mod train;

pub use config::RunConfig;
pub use data_sets::{open_set, OpenedSet, SetRole};
pub use error::{Result, TrainError};
pub use eval_report::{write_atomic, EvalReport};
pub use evaluate::{evaluate, predict_labels, EvalOptions};
pub use inference::{infer_logits, window_starts, InferenceMode};
pub use metrics::{ConfusionMatrix, Protocol};
pub use model_source::{load_model, load_model_from, resolve_model_config, LoadedModel};
pub use optimizer::GroupedOptimizer;
pub use predict::{predict_images, PredictOptions};
pub use prototype_similarity::{embedding_class_sums, pearson, prototype_cosines, ClassEmbeddingSums, PrototypeOptions};
pub use train::{train, TrainOptions, TrainSummary};
