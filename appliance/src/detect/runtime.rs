//! Running a TF Lite model. [`Interpreter`] is all the detector needs;
//! [`LiteRt`] implements it with Google's LiteRT C library (the one shipped in
//! the `ai-edge-litert` Python wheels, XNNPACK on the CPU), loaded at run
//! time so that Mado builds and runs without it.
//!
//! The declarations below follow LiteRT's C API (`litert/c/*.h`) as exported
//! by `libLiteRtRuntimeCApi.so` in ai-edge-litert 1.4.0 for x86_64 and
//! aarch64. The wheel ships no headers to generate them from, so they are
//! written out here and bound to that one release: a library is loaded only
//! when its sha256 is one of [`KNOWN_RUNTIMES`], and any other build is
//! refused before its code runs. A new release means checking these
//! declarations against its headers and adding its hashes.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};

use libloading::Library;
use thiserror::Error;

/// Runs a model with one float input and float outputs.
pub trait Interpreter {
    /// Runs the model on `input` and returns each output tensor, in model order.
    fn run(&mut self, input: &[f32]) -> Result<Vec<Vec<f32>>, RuntimeError>;
}

/// Why the LiteRT runtime failed.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The library could not be loaded.
    #[error(
        "cannot load the LiteRT library {path}: {source} (run scripts/models/fetch-runtime, or set MADO_LITERT_LIB)"
    )]
    Library {
        /// The library file.
        path: PathBuf,
        /// Why loading failed.
        source: libloading::Error,
    },
    /// The library lacks a function of the C API.
    #[error("the LiteRT library {path} lacks {symbol}: not a LiteRT C API library")]
    Symbol {
        /// The library file.
        path: PathBuf,
        /// The missing function.
        symbol: &'static str,
    },
    /// A LiteRT call returned an error status.
    #[error("LiteRT {function} failed: {message} (status {status})")]
    Call {
        /// The C function called.
        function: &'static str,
        /// Its status code.
        status: c_int,
        /// What the runtime reported.
        message: String,
    },
    /// The model does not have exactly one input.
    #[error("the model has {inputs} inputs; the detector needs exactly one")]
    Inputs {
        /// Input tensors the model has.
        inputs: usize,
    },
    /// The input given does not fit the input tensor.
    #[error("input tensor holds {expected} floats, got {got}")]
    InputSize {
        /// Floats the input tensor holds.
        expected: usize,
        /// Floats given.
        got: usize,
    },
    /// A tensor is not float32.
    #[error("tensor {index} is not float32 (element type {element_type})")]
    NotFloat {
        /// Tensor index.
        index: usize,
        /// Its LiteRT element type code.
        element_type: i32,
    },
    /// The library's sha256 is none of [`KNOWN_RUNTIMES`].
    #[error(
        "{path} is not a LiteRT build Mado knows (sha256 {sha256}); it declares the C API of ai-edge-litert 1.4.0 \
         (scripts/models/fetch-runtime)"
    )]
    UnknownRuntime {
        /// The library refused.
        path: PathBuf,
        /// Its sha256, lowercase hex.
        sha256: String,
    },
}

/// The LiteRT libraries whose C API matches the declarations in this file:
/// `libLiteRtRuntimeCApi.so` from ai-edge-litert 1.4.0, by architecture.
pub const KNOWN_RUNTIMES: [(&str, &str); 2] = [
    (
        "x86_64",
        "f421e16d77de29ce886d8f0a9d946b79981d28fa183377c1cf0411ba7697433b",
    ),
    (
        "aarch64",
        "23781d014a0e0de4f8dd40553e558e5f1248e29b1d135edeb187894588fd8d33",
    ),
];

/// Checks that the library at `path` is a known LiteRT build. A file that
/// cannot be read is left for the loader to report.
pub fn check_runtime(path: &Path) -> Result<(), RuntimeError> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(());
    };
    let sha256 = super::sha256_hex(&bytes);
    if KNOWN_RUNTIMES.iter().any(|(_, known)| *known == sha256) {
        Ok(())
    } else {
        Err(RuntimeError::UnknownRuntime {
            path: path.to_path_buf(),
            sha256,
        })
    }
}

type Status = c_int;
type Handle = *mut c_void;
/// LiteRtHwAcceleratorSet bit for the CPU (XNNPACK).
const ACCELERATOR_CPU: c_int = 1;
/// LiteRtElementType for float32 (same value as TfLiteType).
const ELEMENT_FLOAT32: i32 = 1;
/// Host memory handed to LiteRT must be aligned to this many bytes.
const ALIGNMENT: usize = 64;

/// LITERT_TENSOR_MAX_RANK in 1.4.0.
const MAX_RANK: usize = 8;

/// LiteRtRankedTensorType of 1.4.0: the element type, then a LiteRtLayout
/// (`unsigned rank : 7; bool has_strides : 1;` in one 32-bit unit, then
/// dimensions and strides of at most [`MAX_RANK`]); 72 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
struct TensorType {
    element_type: i32,
    rank_and_flags: u32,
    dimensions: [i32; MAX_RANK],
    strides: [u32; MAX_RANK],
}

const _: () = assert!(std::mem::size_of::<TensorType>() == 72);

impl TensorType {
    fn empty() -> Self {
        Self {
            element_type: 0,
            rank_and_flags: 0,
            dimensions: [0; MAX_RANK],
            strides: [0; MAX_RANK],
        }
    }

    fn element_type(&self) -> i32 {
        self.element_type
    }
}

/// The C functions used, resolved once when the library is opened.
struct Api {
    create_environment: unsafe extern "C" fn(c_int, *const c_void, *mut Handle) -> Status,
    destroy_environment: unsafe extern "C" fn(Handle),
    create_model_from_buffer: unsafe extern "C" fn(*const c_void, usize, *mut Handle) -> Status,
    destroy_model: unsafe extern "C" fn(Handle),
    get_model_subgraph: unsafe extern "C" fn(Handle, usize, *mut Handle) -> Status,
    get_num_subgraph_inputs: unsafe extern "C" fn(Handle, *mut usize) -> Status,
    get_num_subgraph_outputs: unsafe extern "C" fn(Handle, *mut usize) -> Status,
    get_subgraph_input: unsafe extern "C" fn(Handle, usize, *mut Handle) -> Status,
    get_subgraph_output: unsafe extern "C" fn(Handle, usize, *mut Handle) -> Status,
    get_ranked_tensor_type: unsafe extern "C" fn(Handle, *mut TensorType) -> Status,
    create_options: unsafe extern "C" fn(*mut Handle) -> Status,
    set_options_hardware_accelerators: unsafe extern "C" fn(Handle, c_int) -> Status,
    create_cpu_options: unsafe extern "C" fn(*mut Handle) -> Status,
    find_cpu_options: unsafe extern "C" fn(Handle, *mut Handle) -> Status,
    set_cpu_options_num_thread: unsafe extern "C" fn(Handle, c_int) -> Status,
    add_opaque_options: unsafe extern "C" fn(Handle, Handle) -> Status,
    create_compiled_model: unsafe extern "C" fn(Handle, Handle, Handle, *mut Handle) -> Status,
    destroy_compiled_model: unsafe extern "C" fn(Handle),
    get_input_requirements: unsafe extern "C" fn(Handle, usize, usize, *mut Handle) -> Status,
    get_output_requirements: unsafe extern "C" fn(Handle, usize, usize, *mut Handle) -> Status,
    get_requirements_buffer_size: unsafe extern "C" fn(Handle, *mut usize) -> Status,
    create_tensor_buffer_from_host_memory:
        unsafe extern "C" fn(*const TensorType, *mut c_void, usize, *const c_void, *mut Handle) -> Status,
    destroy_tensor_buffer: unsafe extern "C" fn(Handle),
    run_compiled_model: unsafe extern "C" fn(Handle, usize, usize, *mut Handle, usize, *mut Handle) -> Status,
    get_status_string: unsafe extern "C" fn(Status) -> *const c_char,
    // Keeps the functions above valid; dropped last.
    _library: Library,
}

impl Api {
    fn open(path: &Path) -> Result<Self, RuntimeError> {
        check_runtime(path)?;
        // SAFETY: loading runs the library's initializers; LiteRT's are benign.
        let library = unsafe { Library::new(path) }.map_err(|source| RuntimeError::Library {
            path: path.to_path_buf(),
            source,
        })?;
        macro_rules! resolve {
            ($name:literal) => {
                // SAFETY: the declared type matches LiteRT's C declaration of this symbol.
                *unsafe { library.get(concat!($name, "\0").as_bytes()) }.map_err(|_| RuntimeError::Symbol {
                    path: path.to_path_buf(),
                    symbol: $name,
                })?
            };
        }
        Ok(Self {
            create_environment: resolve!("LiteRtCreateEnvironment"),
            destroy_environment: resolve!("LiteRtDestroyEnvironment"),
            create_model_from_buffer: resolve!("LiteRtCreateModelFromBuffer"),
            destroy_model: resolve!("LiteRtDestroyModel"),
            get_model_subgraph: resolve!("LiteRtGetModelSubgraph"),
            get_num_subgraph_inputs: resolve!("LiteRtGetNumSubgraphInputs"),
            get_num_subgraph_outputs: resolve!("LiteRtGetNumSubgraphOutputs"),
            get_subgraph_input: resolve!("LiteRtGetSubgraphInput"),
            get_subgraph_output: resolve!("LiteRtGetSubgraphOutput"),
            get_ranked_tensor_type: resolve!("LiteRtGetRankedTensorType"),
            create_options: resolve!("LiteRtCreateOptions"),
            set_options_hardware_accelerators: resolve!("LiteRtSetOptionsHardwareAccelerators"),
            create_cpu_options: resolve!("LiteRtCreateCpuOptions"),
            find_cpu_options: resolve!("LiteRtFindCpuOptions"),
            set_cpu_options_num_thread: resolve!("LiteRtSetCpuOptionsNumThread"),
            add_opaque_options: resolve!("LiteRtAddOpaqueOptions"),
            create_compiled_model: resolve!("LiteRtCreateCompiledModel"),
            destroy_compiled_model: resolve!("LiteRtDestroyCompiledModel"),
            get_input_requirements: resolve!("LiteRtGetCompiledModelInputBufferRequirements"),
            get_output_requirements: resolve!("LiteRtGetCompiledModelOutputBufferRequirements"),
            get_requirements_buffer_size: resolve!("LiteRtGetTensorBufferRequirementsBufferSize"),
            create_tensor_buffer_from_host_memory: resolve!("LiteRtCreateTensorBufferFromHostMemory"),
            destroy_tensor_buffer: resolve!("LiteRtDestroyTensorBuffer"),
            run_compiled_model: resolve!("LiteRtRunCompiledModel"),
            get_status_string: resolve!("LiteRtGetStatusString"),
            _library: library,
        })
    }

    fn check(&self, function: &'static str, status: Status) -> Result<(), RuntimeError> {
        if status == 0 {
            return Ok(());
        }
        // SAFETY: LiteRtGetStatusString returns a static string or null.
        let text = unsafe { (self.get_status_string)(status) };
        let message = if text.is_null() {
            "unknown error".to_string()
        } else {
            // SAFETY: non-null, NUL-terminated, static.
            unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned()
        };
        Err(RuntimeError::Call {
            function,
            status,
            message,
        })
    }
}

/// Tensor memory LiteRT reads and writes in place: 64-byte aligned floats.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Block([f32; ALIGNMENT / 4]);

struct HostTensor {
    blocks: Vec<Block>,
    floats: usize,
    buffer: Handle,
}

impl HostTensor {
    fn as_slice(&self) -> &[f32] {
        // SAFETY: blocks are plain f32 arrays laid out back to back.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast::<f32>(), self.floats) }
    }
    fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as above, and we hold the only Rust reference.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<f32>(), self.floats) }
    }
}

/// A model compiled by LiteRT for the CPU with a fixed number of threads.
pub struct LiteRt {
    api: Api,
    /// The model file's bytes, which LiteRT reads in place: they outlive `model`.
    model_bytes: Vec<u8>,
    environment: Handle,
    model: Handle,
    compiled: Handle,
    input: HostTensor,
    outputs: Vec<HostTensor>,
}

// SAFETY: the handles are owned by this value and LiteRT objects may be used
// from any thread as long as calls are not concurrent, which &mut self ensures.
unsafe impl Send for LiteRt {}

impl LiteRt {
    /// Loads `library` (libLiteRtRuntimeCApi.so), then the model at `model`,
    /// compiled for the CPU with `threads` threads.
    ///
    /// LiteRT 1.4.0 rejects files that are not TF Lite models but crashes on
    /// truncated ones: check the file first ([`super::load_model`] does), or
    /// better, hash the bytes and pass them to [`LiteRt::from_bytes`].
    pub fn open(library: &Path, model: &Path, threads: usize) -> Result<Self, RuntimeError> {
        let bytes = std::fs::read(model).map_err(|e| RuntimeError::Call {
            function: "reading the model",
            status: -1,
            message: format!("{}: {e}", model.display()),
        })?;
        Self::from_bytes(library, bytes, threads)
    }

    /// Loads `library`, then the model held in `model_bytes` (read and
    /// checked once by the caller; never read again from a path), compiled
    /// for the CPU with `threads` threads.
    pub fn from_bytes(library: &Path, model_bytes: Vec<u8>, threads: usize) -> Result<Self, RuntimeError> {
        let api = Api::open(library)?;
        let mut this = Self {
            api,
            model_bytes,
            environment: std::ptr::null_mut(),
            model: std::ptr::null_mut(),
            compiled: std::ptr::null_mut(),
            input: HostTensor {
                blocks: Vec::new(),
                floats: 0,
                buffer: std::ptr::null_mut(),
            },
            outputs: Vec::new(),
        };
        // On any error `this` is dropped, releasing whatever was created.
        this.init(threads)?;
        Ok(this)
    }

    fn init(&mut self, threads: usize) -> Result<(), RuntimeError> {
        let api = &self.api;
        // SAFETY: every call in this block gets valid out-pointers and handles
        // created above it; see the C declarations in `Api`.
        unsafe {
            api.check(
                "LiteRtCreateEnvironment",
                (api.create_environment)(0, std::ptr::null(), &mut self.environment),
            )?;
            api.check(
                "LiteRtCreateModelFromBuffer",
                (api.create_model_from_buffer)(
                    self.model_bytes.as_ptr().cast(),
                    self.model_bytes.len(),
                    &mut self.model,
                ),
            )?;

            let mut subgraph = std::ptr::null_mut();
            api.check(
                "LiteRtGetModelSubgraph",
                (api.get_model_subgraph)(self.model, 0, &mut subgraph),
            )?;
            let (mut inputs, mut outputs) = (0usize, 0usize);
            api.check(
                "LiteRtGetNumSubgraphInputs",
                (api.get_num_subgraph_inputs)(subgraph, &mut inputs),
            )?;
            api.check(
                "LiteRtGetNumSubgraphOutputs",
                (api.get_num_subgraph_outputs)(subgraph, &mut outputs),
            )?;
            if inputs != 1 {
                return Err(RuntimeError::Inputs { inputs });
            }

            // The options are deliberately never destroyed: whether the
            // compiled model takes ownership differs between LiteRT releases,
            // and one small object per model is cheaper than a double free.
            let mut options = std::ptr::null_mut();
            api.check("LiteRtCreateOptions", (api.create_options)(&mut options))?;
            api.check(
                "LiteRtSetOptionsHardwareAccelerators",
                (api.set_options_hardware_accelerators)(options, ACCELERATOR_CPU),
            )?;
            let (mut opaque, mut cpu) = (std::ptr::null_mut(), std::ptr::null_mut());
            api.check("LiteRtCreateCpuOptions", (api.create_cpu_options)(&mut opaque))?;
            api.check("LiteRtFindCpuOptions", (api.find_cpu_options)(opaque, &mut cpu))?;
            let threads = c_int::try_from(threads.max(1)).unwrap_or(c_int::MAX);
            api.check(
                "LiteRtSetCpuOptionsNumThread",
                (api.set_cpu_options_num_thread)(cpu, threads),
            )?;
            api.check("LiteRtAddOpaqueOptions", (api.add_opaque_options)(options, opaque))?;
            api.check(
                "LiteRtCreateCompiledModel",
                (api.create_compiled_model)(self.environment, self.model, options, &mut self.compiled),
            )?;

            let mut tensor = std::ptr::null_mut();
            api.check(
                "LiteRtGetSubgraphInput",
                (api.get_subgraph_input)(subgraph, 0, &mut tensor),
            )?;
            let mut requirements = std::ptr::null_mut();
            api.check(
                "LiteRtGetCompiledModelInputBufferRequirements",
                (api.get_input_requirements)(self.compiled, 0, 0, &mut requirements),
            )?;
            self.input = host_tensor(api, tensor, requirements, 0)?;
            for index in 0..outputs {
                api.check(
                    "LiteRtGetSubgraphOutput",
                    (api.get_subgraph_output)(subgraph, index, &mut tensor),
                )?;
                api.check(
                    "LiteRtGetCompiledModelOutputBufferRequirements",
                    (api.get_output_requirements)(self.compiled, 0, index, &mut requirements),
                )?;
                let output = host_tensor(api, tensor, requirements, index)?;
                self.outputs.push(output);
            }
        }
        Ok(())
    }

    /// Floats in the input tensor.
    pub fn input_len(&self) -> usize {
        self.input.floats
    }
}

/// Allocates aligned memory for `tensor` and wraps it in a LiteRT tensor buffer.
///
/// # Safety
/// `tensor` and `requirements` must be valid handles of a live model.
unsafe fn host_tensor(
    api: &Api,
    tensor: Handle,
    requirements: Handle,
    index: usize,
) -> Result<HostTensor, RuntimeError> {
    let mut tensor_type = TensorType::empty();
    api.check(
        "LiteRtGetRankedTensorType",
        // SAFETY: `tensor` is a live handle (the caller's promise) and `tensor_type` a writable out-value.
        unsafe { (api.get_ranked_tensor_type)(tensor, &mut tensor_type) },
    )?;
    if tensor_type.element_type() != ELEMENT_FLOAT32 {
        return Err(RuntimeError::NotFloat {
            index,
            element_type: tensor_type.element_type(),
        });
    }
    let mut bytes = 0usize;
    api.check(
        "LiteRtGetTensorBufferRequirementsBufferSize",
        // SAFETY: `requirements` is a live handle (the caller's promise) and `bytes` a writable out-value.
        unsafe { (api.get_requirements_buffer_size)(requirements, &mut bytes) },
    )?;
    let floats = bytes / 4;
    let mut host = HostTensor {
        blocks: vec![Block([0.0; ALIGNMENT / 4]); bytes.div_ceil(ALIGNMENT)],
        floats,
        buffer: std::ptr::null_mut(),
    };
    let capacity = host.blocks.len() * ALIGNMENT;
    api.check(
        "LiteRtCreateTensorBufferFromHostMemory",
        // SAFETY: the memory is `capacity` bytes owned by `host`, which the
        // buffer handle never outlives (`LiteRt::drop` destroys it first).
        unsafe {
            (api.create_tensor_buffer_from_host_memory)(
                &tensor_type,
                host.blocks.as_mut_ptr().cast(),
                capacity,
                std::ptr::null(),
                &mut host.buffer,
            )
        },
    )?;
    Ok(host)
}

impl Interpreter for LiteRt {
    fn run(&mut self, input: &[f32]) -> Result<Vec<Vec<f32>>, RuntimeError> {
        if input.len() != self.input.floats {
            return Err(RuntimeError::InputSize {
                expected: self.input.floats,
                got: input.len(),
            });
        }
        self.input.as_mut_slice().copy_from_slice(input);
        let mut inputs = [self.input.buffer];
        let mut outputs: Vec<Handle> = self.outputs.iter().map(|o| o.buffer).collect();
        // SAFETY: the buffers wrap memory owned by self, alive for the call.
        let status = unsafe {
            (self.api.run_compiled_model)(
                self.compiled,
                0,
                1,
                inputs.as_mut_ptr(),
                outputs.len(),
                outputs.as_mut_ptr(),
            )
        };
        self.api.check("LiteRtRunCompiledModel", status)?;
        Ok(self.outputs.iter().map(|o| o.as_slice().to_vec()).collect())
    }
}

impl Drop for LiteRt {
    fn drop(&mut self) {
        // SAFETY: each handle is either null or owned by self; the tensor
        // buffers go before the compiled model, the model and environment last.
        unsafe {
            for tensor in std::iter::once(&self.input).chain(&self.outputs) {
                if !tensor.buffer.is_null() {
                    (self.api.destroy_tensor_buffer)(tensor.buffer);
                }
            }
            if !self.compiled.is_null() {
                (self.api.destroy_compiled_model)(self.compiled);
            }
            if !self.model.is_null() {
                (self.api.destroy_model)(self.model);
            }
            if !self.environment.is_null() {
                (self.api.destroy_environment)(self.environment);
            }
        }
    }
}
