//! The canonical ABI of weir's typed world, by hand: `handler.run` exported, `host.log`
//! and `host.send-event` imported, `cabi_realloc` for the host to place strings in this
//! module's memory. (wit-bindgen generates this; it is short enough to write.)

use std::alloc::{alloc, realloc, Layout};

/// `host.level`.
#[allow(dead_code)]
#[repr(i32)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

#[link(wasm_import_module = "weir:step/host@0.1.0")]
extern "C" {
    #[link_name = "log"]
    fn host_log(level: i32, ptr: *const u8, len: usize);
    /// `result<string, string>`, written at `ret`: tag byte, then (ptr, len) at 4.
    #[link_name = "send-event"]
    fn host_send_event(ptr: *const u8, len: usize, ret: *mut u8);
}

/// Appends a line to the step's log.
pub fn log(level: Level, message: &str) {
    unsafe { host_log(level as i32, message.as_ptr(), message.len()) }
}

/// Sends an event (JSON); its id, or why it was refused.
pub fn send_event(event: &str) -> Result<String, String> {
    let mut ret = [0u32; 3];
    unsafe {
        host_send_event(event.as_ptr(), event.len(), ret.as_mut_ptr() as *mut u8);
        let tag = *(ret.as_ptr() as *const u8);
        let (ptr, len) = (ret[1] as *mut u8, ret[2] as usize);
        let text = String::from_raw_parts(ptr, len, len);
        if tag == 0 {
            Ok(text)
        } else {
            Err(text)
        }
    }
}

/// The return area of `run`: `result<string, step-error>` — tag byte; then for `ok`
/// (ptr, len) at 4, for `err` the status (u16) at 4 and the message (ptr, len) at 8.
static mut RET: [u32; 4] = [0; 4];

#[export_name = "weir:step/handler@0.1.0#run"]
pub unsafe extern "C" fn export_run(ptr: *mut u8, len: usize) -> *mut u8 {
    let input = String::from_raw_parts(ptr, len, len);
    let ret = std::ptr::addr_of_mut!(RET) as *mut u32;
    // Strings handed back are left alive: the instance ends with the step.
    match super::run(&input) {
        Ok(out) => {
            let out = std::mem::ManuallyDrop::new(out);
            *(ret as *mut u8) = 0;
            *ret.add(1) = out.as_ptr() as u32;
            *ret.add(2) = out.len() as u32;
        }
        Err((status, message)) => {
            let message = std::mem::ManuallyDrop::new(message);
            *(ret as *mut u8) = 1;
            *(ret.add(1) as *mut u16) = status;
            *ret.add(2) = message.as_ptr() as u32;
            *ret.add(3) = message.len() as u32;
        }
    }
    ret as *mut u8
}

extern "C" {
    fn __wasm_call_ctors();
}

/// The reactor's start, called once when the component is instantiated. Defining it
/// (and calling the constructors here) keeps the linker from wrapping every export in a
/// constructor call: `cabi_realloc` then runs while the host lowers `run`'s input, when
/// the module may not call WASI (wasi-libc's constructors read the environment).
#[export_name = "_initialize"]
pub extern "C" fn initialize() {
    unsafe { __wasm_call_ctors() }
}

/// Memory for the strings the host passes in.
#[no_mangle]
pub unsafe extern "C" fn cabi_realloc(
    old: *mut u8,
    old_size: usize,
    align: usize,
    new_size: usize,
) -> *mut u8 {
    if new_size == 0 {
        return align as *mut u8;
    }
    let layout = Layout::from_size_align_unchecked(new_size, align);
    if old.is_null() || old_size == 0 {
        alloc(layout)
    } else {
        realloc(old, Layout::from_size_align_unchecked(old_size, align), new_size)
    }
}
