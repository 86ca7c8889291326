//! Wiring of networks and data into what users run: today, building a network from a preset,
//! a configuration file or a t2s weight file, loading PyTorch or t2s weights into it, and
//! whole-image inference on image files (`t2s predict`).

pub mod error;
pub mod model_source;
pub mod predict;

pub use error::{Result, TrainError};
pub use model_source::{load_model, resolve_model_config, LoadedModel};
pub use predict::{predict_images, PredictOptions};
