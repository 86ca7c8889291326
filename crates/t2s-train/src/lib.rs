//! Wiring of networks, losses and data into what users run:
//! - the run configuration ([`config`]: one TOML file, every setting validated up front) and the
//!   datasets it names ([`data_sets`]);
//! - training ([`train`]): the adaptation method as a type ([`train::Adaptation`]), the loop that
//!   opens a run and iterates (step, optimiser, logs, evaluation, checkpoints), one iteration's
//!   passes ([`train::step`]), the EMA teacher and pseudo-labels ([`self_training`]), the T2S
//!   term's sampling and state ([`t2s_term`]), t2s's own AdamW/SGD ([`optimizer`]);
//! - models from presets, configuration or weight files ([`model_source`]), inference (whole
//!   image or sliding window), evaluation with the anchors' mIoU protocols, prediction on image
//!   files, and the prototype-similarity analysis (`t2s similarity`).
//!
//! The library prints nothing: training reports through [`TrainEvent`]s, evaluation and
//! prediction through progress callbacks, and the program decides what to show.

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
pub mod replicas;
pub mod self_training;
pub mod t2s_term;
pub mod train;

pub use config::RunConfig;
pub use data_sets::{open_set, OpenedSet, SetRole};
pub use error::{Result, TrainError};
pub use eval_report::{write_atomic, EvalReport};
pub use evaluate::{evaluate, predict_labels, save_kept, EvalOptions};
pub use inference::{infer_logits, window_starts, InferenceMode};
pub use metrics::{ConfusionMatrix, Protocol};
pub use model_source::{load_model, load_model_from, resolve_model_config, LoadedModel, Sources};
pub use optimizer::GroupedOptimizer;
pub use predict::{auto_inference, predict_images, PredictInference, PredictOptions, PredictReport, OUTPUT_SUFFIXES};
pub use prototype_similarity::{
    embedding_class_sums, pearson, prototype_alignment, prototype_cosines, Alignment, ClassEmbeddingSums, FeatureSpace, PrototypeOptions,
};
pub use train::{train, TrainEvent, TrainOptions, TrainSummary};
