//! Run-time choice among the backends compiled in: `--device auto|cpu|wgpu|cuda|cuda:N`.

use anyhow::{bail, Result};
use t2s_model::T2sBackend;

/// A backend and device, chosen at run time.
#[derive(Debug, Clone)]
pub enum Selected {
    /// Burn's Flex backend on the CPU.
    Cpu,
    /// A wgpu adapter.
    #[cfg(feature = "wgpu")]
    Wgpu(burn::backend::wgpu::WgpuDevice, String),
    /// An NVIDIA GPU through CUDA.
    #[cfg(feature = "cuda")]
    Cuda(burn::backend::cuda::CudaDevice),
}

impl std::fmt::Display for Selected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selected::Cpu => write!(f, "cpu (Flex backend)"),
            #[cfg(feature = "wgpu")]
            Selected::Wgpu(_, name) => write!(f, "wgpu ({name})"),
            #[cfg(feature = "cuda")]
            Selected::Cuda(d) => write!(f, "cuda:{}", d.index),
        }
    }
}

/// Backends compiled into this binary, for messages.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut v = vec!["cpu"];
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    v
}

/// Mesa's Vulkan drivers (lavapipe) print "XDG_RUNTIME_DIR is invalid or not set" on every adapter
/// probe where the variable is missing (containers, batch jobs, `sudo`). Where it is, it is set to a
/// private folder of this user (`<temp>/t2s-runtime-<uid>`, mode 700) for this process; `main`
/// calls this before any thread starts.
#[cfg(all(target_os = "linux", feature = "wgpu"))]
pub fn ensure_runtime_dir() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir()) {
        return;
    }
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else { return };
    let dir = std::env::temp_dir().join(format!("t2s-runtime-{uid}"));
    let _ = std::fs::create_dir(&dir);
    // Only a folder that this user owns, and nobody else can enter.
    let owned = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == uid);
    if owned && std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).is_ok() {
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}

/// Parses and resolves a `--device` value. `auto` prefers CUDA, then a hardware wgpu adapter
/// (discrete, then integrated; software rasterisers such as lavapipe are slower than the CPU
/// backend and are only used when asked for with `wgpu`), then the CPU.
pub fn select(spec: &str) -> Result<Selected> {
    let spec = spec.trim().to_ascii_lowercase();
    match spec.as_str() {
        "cpu" => Ok(Selected::Cpu),
        "auto" => Ok(auto()),
        "wgpu" => wgpu_any(),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let index = match s.strip_prefix("cuda:") {
                Some(n) => n.parse::<usize>().map_err(|_| anyhow::anyhow!("--device {s}: the GPU index must be a number, e.g. cuda:0"))?,
                None => 0,
            };
            cuda(index)
        }
        other => bail!("--device {other}: expected auto, cpu, wgpu, cuda or cuda:N (compiled in: {})", compiled_backends().join(", ")),
    }
}

fn auto() -> Selected {
    #[cfg(feature = "cuda")]
    if let Ok(sel) = cuda(0) {
        return sel;
    }
    #[cfg(feature = "wgpu")]
    if let Some(sel) = wgpu_hardware() {
        return sel;
    }
    Selected::Cpu
}

#[cfg(feature = "wgpu")]
fn adapters() -> Vec<wgpu::AdapterInfo> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY)).iter().map(|a| a.get_info()).collect()
}

#[cfg(feature = "wgpu")]
fn wgpu_hardware() -> Option<Selected> {
    use burn::backend::wgpu::WgpuDevice;
    let infos = adapters();
    for (kind, device) in
        [(wgpu::DeviceType::DiscreteGpu, WgpuDevice::DiscreteGpu(0)), (wgpu::DeviceType::IntegratedGpu, WgpuDevice::IntegratedGpu(0))]
    {
        if let Some(info) = infos.iter().find(|i| i.device_type == kind) {
            return Some(Selected::Wgpu(device, format!("{} via {:?}", info.name, info.backend)));
        }
    }
    None
}

#[cfg(feature = "wgpu")]
fn wgpu_any() -> Result<Selected> {
    let infos = adapters();
    let Some(info) = infos.first() else {
        bail!("--device wgpu: no wgpu adapter found; install a Vulkan driver (on Debian: apt-get install mesa-vulkan-drivers libvulkan1) or use --device cpu");
    };
    Ok(Selected::Wgpu(burn::backend::wgpu::WgpuDevice::DefaultDevice, format!("{} via {:?}", info.name, info.backend)))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_any() -> Result<Selected> {
    bail!("--device wgpu: this binary was built without the wgpu backend; rebuild with `--features wgpu` (on by default)")
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Selected> {
    use burn::backend::cuda::CudaDevice;
    use burn::backend::Cuda;
    use burn::tensor::Tensor;
    let device = CudaDevice::new(index);
    // The CUDA runtime panics when no driver or device is present; probe it once, quietly.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(|| Tensor::<Cuda, 1>::ones([4], &device).sum().into_scalar());
    std::panic::set_hook(hook);
    match probe {
        Ok(v) if v == 4.0 => Ok(Selected::Cuda(device)),
        _ => bail!("--device cuda:{index}: no usable CUDA device (is the NVIDIA driver installed and is there a GPU {index}?)"),
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize) -> Result<Selected> {
    bail!("--device cuda: this binary was built without CUDA; rebuild with `cargo build --release --features cuda`")
}

/// Work that runs on whichever backend was selected.
pub trait BackendTask {
    type Output;
    /// Runs on backend `B` (inference backend; training wraps it in `Autodiff`).
    fn run<B: T2sBackend>(self, device: B::Device) -> Result<Self::Output>;
}

/// Runs `task` on the selected backend.
pub fn dispatch<T: BackendTask>(selected: &Selected, task: T) -> Result<T::Output> {
    match selected {
        Selected::Cpu => task.run::<burn::backend::Flex>(Default::default()),
        #[cfg(feature = "wgpu")]
        Selected::Wgpu(d, _) => task.run::<burn::backend::Wgpu>(d.clone()),
        #[cfg(feature = "cuda")]
        Selected::Cuda(d) => task.run::<burn::backend::Cuda>(d.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_errors_name_the_value() {
        let err = select("tpu").unwrap_err().to_string();
        assert!(err.contains("tpu") && err.contains("cpu"), "{err}");
        let err = select("cuda:x").unwrap_err().to_string();
        assert!(err.contains("cuda:x"), "{err}");
        assert!(matches!(select("CPU").unwrap(), Selected::Cpu));
        #[cfg(not(feature = "cuda"))]
        assert!(select("cuda").unwrap_err().to_string().contains("--features cuda"));
    }
}
