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

/// Parses and resolves a `--device` list, `a,b,…` (`t2s train`: one data-parallel replica per
/// device), all of one backend; a single device is a list of one.
pub fn select_many(spec: &str) -> Result<Vec<Selected>> {
    let selected = spec.split(',').map(|one| select(one.trim())).collect::<Result<Vec<_>>>()?;
    let kind = |s: &Selected| s.to_string().split([' ', ':']).next().unwrap_or_default().to_string();
    if let Some(other) = selected.iter().find(|s| kind(s) != kind(&selected[0])) {
        bail!(
            "--device {spec}: {} and {other} are different backends; data-parallel replicas all run on one (e.g. cuda:0,cuda:1)",
            selected[0]
        );
    }
    Ok(selected)
}

/// Parses and resolves a `--device` value. `auto` prefers CUDA, then a hardware wgpu adapter
/// (discrete, then integrated; software rasterisers such as lavapipe are slower than the CPU
/// backend and are only used when asked for with `wgpu`), then the CPU.
pub fn select(spec: &str) -> Result<Selected> {
    if spec.contains(',') {
        bail!("--device {spec}: several devices (data-parallel replicas) are for `t2s train`; give one device here");
    }
    let spec = spec.trim().to_ascii_lowercase();
    match spec.as_str() {
        "cpu" => Ok(Selected::Cpu),
        "auto" => Ok(auto()),
        "wgpu" => wgpu_any(),
        s if s.starts_with("wgpu:") => {
            let index = s["wgpu:".len()..]
                .parse::<usize>()
                .map_err(|_| anyhow::anyhow!("--device {s}: the GPU index must be a number, e.g. wgpu:0"))?;
            wgpu_index(index)
        }
        s if s == "cuda" || s.starts_with("cuda:") => {
            let index = match s.strip_prefix("cuda:") {
                Some(n) => n.parse::<usize>().map_err(|_| anyhow::anyhow!("--device {s}: the GPU index must be a number, e.g. cuda:0"))?,
                None => 0,
            };
            cuda(index)
        }
        other => bail!(
            "--device {other}: expected auto, cpu, wgpu, wgpu:N, cuda or cuda:N, or a comma list of one kind (compiled in: {})",
            compiled_backends().join(", ")
        ),
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

/// The `index`-th hardware adapter (discrete GPUs first, then integrated ones), as wgpu numbers
/// them within their kind.
#[cfg(feature = "wgpu")]
fn wgpu_index(index: usize) -> Result<Selected> {
    use burn::backend::wgpu::WgpuDevice;
    let infos = adapters();
    let of = |kind| infos.iter().filter(move |i: &&wgpu::AdapterInfo| i.device_type == kind).collect::<Vec<_>>();
    let (discrete, integrated) = (of(wgpu::DeviceType::DiscreteGpu), of(wgpu::DeviceType::IntegratedGpu));
    if let Some(info) = discrete.get(index) {
        return Ok(Selected::Wgpu(WgpuDevice::DiscreteGpu(index), format!("{} via {:?}", info.name, info.backend)));
    }
    let i = index - discrete.len();
    if let Some(info) = integrated.get(i) {
        return Ok(Selected::Wgpu(WgpuDevice::IntegratedGpu(i), format!("{} via {:?}", info.name, info.backend)));
    }
    bail!(
        "--device wgpu:{index}: this machine has {} hardware wgpu adapter(s) (numbered from 0); `wgpu` alone takes the first adapter of any kind",
        discrete.len() + integrated.len()
    )
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_index(_index: usize) -> Result<Selected> {
    wgpu_any()
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

/// Work that runs on one backend with one or more devices (data-parallel replicas).
pub trait ReplicaTask {
    type Output;
    /// Runs on backend `B` with `devices` (at least one).
    fn run<B: T2sBackend>(self, devices: Vec<B::Device>) -> Result<Self::Output>;
}

/// Runs `task` on the backend of `selected` (from [`select_many`]: all of one kind).
pub fn dispatch_replicas<T: ReplicaTask>(selected: &[Selected], task: T) -> Result<T::Output> {
    match selected.first() {
        None => bail!("--device: no device given"),
        Some(Selected::Cpu) => task.run::<burn::backend::Flex>(vec![Default::default(); selected.len()]),
        #[cfg(feature = "wgpu")]
        Some(Selected::Wgpu(..)) => task.run::<burn::backend::Wgpu>(
            selected.iter().filter_map(|s| if let Selected::Wgpu(d, _) = s { Some(d.clone()) } else { None }).collect(),
        ),
        #[cfg(feature = "cuda")]
        Some(Selected::Cuda(_)) => task.run::<burn::backend::Cuda>(
            selected.iter().filter_map(|s| if let Selected::Cuda(d) = s { Some(d.clone()) } else { None }).collect(),
        ),
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
        assert_eq!(select_many("cpu, cpu").unwrap().len(), 2);
        let err = select_many("cpu,tpu").unwrap_err().to_string();
        assert!(err.contains("tpu"), "{err}");
        assert!(select("wgpu:x").unwrap_err().to_string().contains("wgpu:x"));
        assert!(select("cpu,cpu").unwrap_err().to_string().contains("t2s train"));
        #[cfg(not(feature = "cuda"))]
        assert!(select("cuda").unwrap_err().to_string().contains("--features cuda"));
    }
}
