//! The CUDA prover (feature `cuda`): generation and row hashing in our
//! kernels (`kernels/pow.cu`, compiled by NVRTC at run time), the product in
//! cuBLAS's int8 GEMM (int32 accumulation on tensor cores: exact, see the
//! spec). The driver, NVRTC and cuBLAS are loaded at run time, so this builds
//! without CUDA; every entry point checks for them first and returns
//! [`PowError::Cuda`] instead of panicking.
//!
//! Layout on the device (side `p` = `n` padded to [`PAD`](crate::PAD), zero
//! padding): `A_j` row-major int8, `B_j` column-major int8, `C_j` row-major
//! int32. cuBLAS is column-major, so `C = A · B` is the "TN" call
//! `Cᵀ = (B_colmajor)ᵀ · A_rowmajor`, the layout int8 GEMMs favour.

use std::ffi::c_void;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::cublas::{CudaBlas, result as blas, sys as blas_sys};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, LaunchConfig,
    PushKernelArg,
};

use crate::PowError;
use crate::challenge::{Challenge, padded};
use crate::generate::{MatrixGen, Side};
use crate::merkle::{self, Hash};
use crate::prover::{Commitment, Opening, Prover, RowRef};

/// The kernels' source, compiled by NVRTC when a prover starts.
pub const KERNELS: &str = include_str!("../kernels/pow.cu");

/// An NVIDIA GPU as the driver reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GpuDevice {
    /// Driver ordinal.
    pub ordinal: usize,
    /// Marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as `nvidia-smi` prints it.
    pub uuid: String,
    /// Compute capability `(major, minor)`.
    pub compute_capability: (i32, i32),
}

/// A failed CUDA call as a [`PowError::CudaCall`]: what was being done,
/// and the driver's, NVRTC's or cuBLAS's error as its source.
fn err<E: std::error::Error + Send + Sync + 'static>(what: &str) -> impl Fn(E) -> PowError + '_ {
    move |e| PowError::CudaCall {
        what: what.to_owned(),
        source: Box::new(e),
    }
}

/// Why CUDA cannot be used here, or `None` when the driver, NVRTC and cuBLAS
/// libraries all load.
pub fn unavailable() -> Option<String> {
    // SAFETY: these only try to open the shared libraries.
    let (driver, nvrtc, cublas) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::nvrtc::sys::is_culib_present(),
            cudarc::cublas::sys::is_culib_present(),
        )
    };
    let missing: Vec<&str> = [
        (!driver).then_some("the driver (libcuda)"),
        (!nvrtc).then_some("NVRTC (libnvrtc)"),
        (!cublas).then_some("cuBLAS (libcublas)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!missing.is_empty()).then(|| format!("CUDA libraries not found: {}", missing.join(", ")))
}

fn uuid_string(bytes: &[std::ffi::c_char; 16]) -> String {
    let b: Vec<u8> = bytes.iter().map(|&c| c as u8).collect();
    let h = hex::encode(b);
    format!(
        "GPU-{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The GPUs the driver sees (an error when there is no driver; an empty
/// list when it sees none).
pub fn devices() -> Result<Vec<GpuDevice>, PowError> {
    // SAFETY: only tries to open the shared library.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(PowError::Cuda(
            "no CUDA driver (libcuda) on this machine".into(),
        ));
    }
    let count = match CudaContext::device_count() {
        Ok(c) => c,
        Err(e) if format!("{e:?}").contains("NO_DEVICE") => 0,
        Err(e) => return Err(err("counting devices")(e)),
    };
    (0..count.max(0) as usize).map(device).collect()
}

fn device(ordinal: usize) -> Result<GpuDevice, PowError> {
    let ctx = CudaContext::new(ordinal).map_err(err("opening the device"))?;
    describe(&ctx, ordinal)
}

fn describe(ctx: &Arc<CudaContext>, ordinal: usize) -> Result<GpuDevice, PowError> {
    Ok(GpuDevice {
        ordinal,
        name: ctx.name().map_err(err("device name"))?,
        memory_bytes: ctx.total_mem().map_err(err("device memory"))? as u64,
        uuid: uuid_string(&ctx.uuid().map_err(err("device uuid"))?.bytes),
        compute_capability: ctx
            .compute_capability()
            .map_err(err("compute capability"))?,
    })
}

struct Kernels {
    gen_a: CudaFunction,
    gen_b: CudaFunction,
    hash_rows: CudaFunction,
    merkle_level: CudaFunction,
}

struct Product {
    a: CudaSlice<i8>,
    b: CudaSlice<i8>,
    c: CudaSlice<i32>,
}

struct State {
    challenge: Challenge,
    products: Vec<Product>,
    tree: merkle::Tree,
}

/// The CUDA prover. All products of a challenge stay resident until the
/// next commitment (openings are copied from them).
pub struct CudaProver {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    kernels: Kernels,
    info: GpuDevice,
    memory_share: f64,
    state: Option<State>,
}

impl std::fmt::Debug for CudaProver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaProver")
            .field("device", &self.info)
            .finish_non_exhaustive()
    }
}

impl CudaProver {
    /// A prover on device `ordinal`: compiles the kernels for it.
    pub fn new(ordinal: usize) -> Result<CudaProver, PowError> {
        if let Some(why) = unavailable() {
            return Err(PowError::Cuda(why));
        }
        let ctx = CudaContext::new(ordinal).map_err(err("opening the device"))?;
        let info = describe(&ctx, ordinal)?;
        let (major, minor) = info.compute_capability;
        let opts = cudarc::nvrtc::CompileOptions {
            options: vec![format!("--gpu-architecture=compute_{major}{minor}")],
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(KERNELS, opts)
            .map_err(err("compiling kernels/pow.cu"))?;
        let module = ctx.load_module(ptx).map_err(err("loading the kernels"))?;
        let f = |name: &str| {
            module.load_function(name).map_err(|e| PowError::CudaCall {
                what: format!("loading kernel {name}"),
                source: Box::new(e),
            })
        };
        let kernels = Kernels {
            gen_a: f("pow_gen_a")?,
            gen_b: f("pow_gen_b")?,
            hash_rows: f("pow_hash_rows")?,
            merkle_level: f("pow_merkle_level")?,
        };
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(err("starting cuBLAS"))?;
        Ok(CudaProver {
            ctx,
            stream,
            blas,
            kernels,
            info,
            memory_share: 0.9,
            state: None,
        })
    }

    /// The device.
    pub fn info(&self) -> &GpuDevice {
        &self.info
    }

    /// Refuses challenges needing more than `share` of the free memory
    /// (default 0.9).
    pub fn memory_share(mut self, share: f64) -> CudaProver {
        self.memory_share = share.clamp(0.01, 1.0);
        self
    }

    fn check_memory(&self, ch: &Challenge) -> Result<(), PowError> {
        let (free, _) = self
            .ctx
            .mem_get_info()
            .map_err(err("reading free memory"))?;
        let needed = u64::from(ch.count) * Challenge::bytes_per_product(ch.n) + ch.leaves() * 64;
        let allowed = (free as f64 * self.memory_share) as u64;
        if needed > allowed {
            return Err(PowError::Memory {
                needed,
                available: allowed,
            });
        }
        Ok(())
    }

    fn alloc_product(&self, n: u32) -> Result<Product, PowError> {
        let p = padded(n) as usize;
        let alloc = err::<cudarc::driver::DriverError>;
        Ok(Product {
            a: self
                .stream
                .alloc_zeros::<i8>(p * p)
                .map_err(alloc("allocating A"))?,
            b: self
                .stream
                .alloc_zeros::<i8>(p * p)
                .map_err(alloc("allocating B"))?,
            c: self
                .stream
                .alloc_zeros::<i32>(p * p)
                .map_err(alloc("allocating C"))?,
        })
    }

    fn generate(&self, ch: &Challenge, j: u32, prod: &mut Product) -> Result<(), PowError> {
        let (n, p) = (ch.n, padded(ch.n));
        let ka = MatrixGen::new(&ch.seed, j, Side::A).key();
        let kb = MatrixGen::new(&ch.seed, j, Side::B).key();
        let launch = err::<cudarc::driver::DriverError>("generating matrices");
        // SAFETY: argument types and order match the kernels' signatures;
        // the buffers hold p * p elements, the kernels stay inside them.
        unsafe {
            self.stream
                .launch_builder(&self.kernels.gen_a)
                .arg(&mut prod.a)
                .arg(&ka)
                .arg(&n)
                .arg(&p)
                .launch(LaunchConfig {
                    grid_dim: (p, 1, 1),
                    block_dim: (256, 1, 1),
                    shared_mem_bytes: 0,
                })
                .map_err(&launch)?;
            self.stream
                .launch_builder(&self.kernels.gen_b)
                .arg(&mut prod.b)
                .arg(&kb)
                .arg(&n)
                .arg(&p)
                .launch(LaunchConfig {
                    grid_dim: (p.div_ceil(256), p / 8, 1),
                    block_dim: (256, 1, 1),
                    shared_mem_bytes: 0,
                })
                .map_err(&launch)?;
        }
        Ok(())
    }

    /// `C = A · B` with cuBLAS's int8 GEMM (int32 sums).
    fn multiply(&self, n: u32, prod: &mut Product) -> Result<(), PowError> {
        let p = padded(n) as i32;
        let (alpha, beta) = (1i32, 0i32);
        let (b_ptr, _rb) = prod.b.device_ptr(&self.stream);
        let (a_ptr, _ra) = prod.a.device_ptr(&self.stream);
        let (c_ptr, _rc) = prod.c.device_ptr_mut(&self.stream);
        // SAFETY: the pointers are live device buffers of p * p elements of
        // the declared types; alpha and beta are host int32 (the handle's
        // default pointer mode), as CUBLAS_COMPUTE_32I requires.
        unsafe {
            blas::gemm_ex(
                *self.blas.handle(),
                blas_sys::cublasOperation_t::CUBLAS_OP_T,
                blas_sys::cublasOperation_t::CUBLAS_OP_N,
                p,
                p,
                p,
                &alpha as *const i32 as *const c_void,
                b_ptr as *const c_void,
                blas_sys::cudaDataType::CUDA_R_8I,
                p,
                a_ptr as *const c_void,
                blas_sys::cudaDataType::CUDA_R_8I,
                p,
                &beta as *const i32 as *const c_void,
                c_ptr as *mut c_void,
                blas_sys::cudaDataType::CUDA_R_32I,
                p,
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32I,
                blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT_TENSOR_OP,
            )
        }
        .map_err(err("int8 GEMM"))
    }

    fn hash_rows(
        &self,
        n: u32,
        prod: &Product,
        key: &CudaSlice<u32>,
        leaves: &mut CudaSlice<u32>,
        first: u64,
    ) -> Result<(), PowError> {
        let p = padded(n);
        let chunks = n.div_ceil(256);
        let threads = chunks.div_ceil(32).max(1) * 32;
        // SAFETY: as `generate`; the launch has at least `chunks` threads and
        // `chunks` chaining values of shared memory, as the kernel requires.
        unsafe {
            self.stream
                .launch_builder(&self.kernels.hash_rows)
                .arg(&prod.c)
                .arg(&n)
                .arg(&p)
                .arg(key)
                .arg(leaves)
                .arg(&first)
                .launch(LaunchConfig {
                    grid_dim: (n, 1, 1),
                    block_dim: (threads, 1, 1),
                    shared_mem_bytes: chunks * 32,
                })
        }
        .map(|_| ())
        .map_err(err("hashing rows"))
    }

    /// Builds the Merkle tree over `leaves` on the device; returns every
    /// level, copied to the host (level 0 = the leaves).
    fn tree(&self, mut level: CudaSlice<u32>, count: u64) -> Result<Vec<Vec<Hash>>, PowError> {
        let node_key = self.upload_key(&merkle::node_key())?;
        let to_host = |s: &CudaSlice<u32>| -> Result<Vec<Hash>, PowError> {
            let words = self.stream.clone_dtoh(s).map_err(err("copying the tree"))?;
            Ok(words
                .chunks_exact(8)
                .map(|w| {
                    let mut h = [0u8; 32];
                    for (o, x) in h.chunks_exact_mut(4).zip(w) {
                        o.copy_from_slice(&x.to_le_bytes());
                    }
                    h
                })
                .collect())
        };
        let mut levels = vec![to_host(&level)?];
        let mut width = count;
        while width > 1 {
            let up = width.div_ceil(2);
            let mut next = self
                .stream
                .alloc_zeros::<u32>(up as usize * 8)
                .map_err(err("allocating the tree"))?;
            let blocks = u32::try_from(up.div_ceil(256))
                .map_err(|_| PowError::Cuda("tree too wide".into()))?;
            // SAFETY: `level` holds `width` nodes and `next` `up` nodes of 8
            // words; the kernel writes node i < up only.
            unsafe {
                self.stream
                    .launch_builder(&self.kernels.merkle_level)
                    .arg(&level)
                    .arg(&width)
                    .arg(&node_key)
                    .arg(&mut next)
                    .launch(LaunchConfig {
                        grid_dim: (blocks, 1, 1),
                        block_dim: (256, 1, 1),
                        shared_mem_bytes: 0,
                    })
            }
            .map_err(err("building the tree"))?;
            levels.push(to_host(&next)?);
            level = next;
            width = up;
        }
        Ok(levels)
    }

    fn upload_key(&self, key: &Hash) -> Result<CudaSlice<u32>, PowError> {
        let words: Vec<u32> = key
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        self.stream
            .clone_htod(&words)
            .map_err(err("uploading a key"))
    }

    fn sync(&self) -> Result<(), PowError> {
        self.stream.synchronize().map_err(err("synchronizing"))
    }

    /// Average time of one library int8 GEMM of side `n` over `reps` runs
    /// (after one warm-up): the peak the prover's matmul phase is held to.
    pub fn time_gemm(&self, n: u32, reps: u32) -> Result<Duration, PowError> {
        let ch = Challenge::new(crate::Seed([0; 32]), n, 1)?;
        self.check_memory(&ch)?;
        let mut prod = self.alloc_product(n)?;
        self.generate(&ch, 0, &mut prod)?;
        self.multiply(n, &mut prod)?;
        self.sync()?;
        let t = Instant::now();
        for _ in 0..reps.max(1) {
            self.multiply(n, &mut prod)?;
        }
        self.sync()?;
        Ok(t.elapsed() / reps.max(1))
    }

    /// Copies row `row` of the resident product `j`.
    fn row(&self, prod: &Product, n: u32, row: u32) -> Result<Vec<i32>, PowError> {
        let p = padded(n) as usize;
        let start = row as usize * p;
        let view = prod.c.slice(start..start + n as usize);
        self.stream.clone_dtoh(&view).map_err(err("copying a row"))
    }
}

impl Prover for CudaProver {
    fn backend(&self) -> &'static str {
        "cuda"
    }

    fn device(&self) -> String {
        self.info.name.clone()
    }

    fn commit(&mut self, ch: &Challenge) -> Result<Commitment, PowError> {
        ch.check()?;
        self.state = None; // free the last challenge's products first
        self.check_memory(ch)?;
        let start = Instant::now();
        let leaf_key = self.upload_key(&merkle::leaf_key())?;
        let mut leaves = self
            .stream
            .alloc_zeros::<u32>(ch.leaves() as usize * 8)
            .map_err(err("allocating leaves"))?;
        let mut products = Vec::with_capacity(ch.count as usize);
        for j in 0..ch.count {
            let mut prod = self.alloc_product(ch.n)?;
            self.generate(ch, j, &mut prod)?;
            self.multiply(ch.n, &mut prod)?;
            self.hash_rows(
                ch.n,
                &prod,
                &leaf_key,
                &mut leaves,
                u64::from(j) * u64::from(ch.n),
            )?;
            products.push(prod);
        }
        let levels = self.tree(leaves, ch.leaves())?;
        self.sync()?;
        let elapsed = start.elapsed();
        let tree = merkle::Tree::from_levels(levels);
        let root = tree.root();
        self.state = Some(State {
            challenge: *ch,
            products,
            tree,
        });
        Ok(Commitment { root, elapsed })
    }

    fn open(&self, rows: &[RowRef]) -> Result<Vec<Opening>, PowError> {
        let Some(st) = &self.state else {
            return Err(PowError::Malformed("nothing committed yet".into()));
        };
        let tree = &st.tree;
        rows.iter()
            .map(|at| {
                let prod = st
                    .products
                    .get(at.matrix as usize)
                    .filter(|_| at.row < st.challenge.n);
                let Some(prod) = prod else {
                    return Err(PowError::Malformed(format!(
                        "row {at:?} is outside the challenge"
                    )));
                };
                let values = self.row(prod, st.challenge.n, at.row)?;
                crate::prover::opening(tree, st.challenge.n, *at, values)
            })
            .collect()
    }

    fn leaves(&self) -> &[Hash] {
        self.state
            .as_ref()
            .map(|s| s.tree.leaves())
            .unwrap_or_default()
    }
}

/// For tests: a prover on GPU 0, or `None` after printing why there is none
/// (no driver, no device, kernels that fail to build). With
/// `AKIHABARA_REQUIRE_GPU=1` a missing GPU panics instead, so a GPU machine's
/// CI cannot pass by skipping.
pub fn require_gpu(test: &str) -> Option<CudaProver> {
    let why = match devices() {
        Ok(d) if d.is_empty() => "the CUDA driver sees no device".to_owned(),
        Ok(_) => match CudaProver::new(0) {
            Ok(p) => return Some(p),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    };
    let msg = format!("SKIPPED {test}: no usable GPU ({why})");
    assert!(std::env::var_os("AKIHABARA_REQUIRE_GPU").is_none(), "{msg}");
    // Straight to the terminal: a test harness captures `eprintln!`, and a
    // skip must show in the run's output rather than pass silently.
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
    None
}
