//! The host module `benthos_wasm` (and `bento_wasm`, the same functions):
//! what a guest calls to read and rewrite the message being processed.
//!
//! Each function is written once, as an `async fn` taking the [`Mode`]:
//! linked with `func_wrap_async` for guests on a fiber, and with
//! `func_wrap` for synchronous guests, whose calls never wait, so that one
//! poll finishes them ([`ready`]).

use wasmtime::{Caller, Linker};

use super::guest::{copy_in, copy_out, is_set_up, processing};
use super::{BENTHOS_MODULE, BENTO_MODULE, Mode, ready};
use crate::host::HostState;

/// `ptr << 32 | len`, as the guest reads an `i64` answer.
fn ptr_len(ptr: u32, len: u32) -> i64 {
    ((u64::from(ptr) << 32) | u64::from(len)) as i64
}

/// Links the host functions under both module names.
pub(super) fn add_host_functions(
    mut linker: Linker<HostState>,
    mode: Mode,
) -> wasmtime::Result<Linker<HostState>> {
    for module in [BENTHOS_MODULE, BENTO_MODULE] {
        match mode {
            Mode::Sync => {
                linker.func_wrap(
                    module,
                    "v0_msg_as_bytes",
                    |mut caller: Caller<'_, HostState>| {
                        ready(msg_as_bytes(Mode::Sync, &mut caller))
                    },
                )?;
                linker.func_wrap(
                    module,
                    "v0_msg_set_bytes",
                    |mut caller: Caller<'_, HostState>, ptr: u32, len: u32| {
                        ready(msg_set_bytes(Mode::Sync, &mut caller, ptr, len))
                    },
                )?;
                linker.func_wrap(
                    module,
                    "v0_msg_get_meta",
                    |mut caller: Caller<'_, HostState>, ptr: u32, len: u32| {
                        ready(msg_get_meta(Mode::Sync, &mut caller, ptr, len))
                    },
                )?;
                linker.func_wrap(
                    module,
                    "v0_msg_set_meta",
                    |mut caller: Caller<'_, HostState>,
                     key_ptr: u32,
                     key_len: u32,
                     ptr: u32,
                     len: u32| {
                        ready(msg_set_meta(
                            Mode::Sync,
                            &mut caller,
                            (key_ptr, key_len),
                            (ptr, len),
                        ))
                    },
                )?;
            }
            Mode::Async => {
                linker.func_wrap_async(
                    module,
                    "v0_msg_as_bytes",
                    |mut caller: Caller<'_, HostState>, (): ()| {
                        Box::new(async move { msg_as_bytes(Mode::Async, &mut caller).await })
                    },
                )?;
                linker.func_wrap_async(
                    module,
                    "v0_msg_set_bytes",
                    |mut caller: Caller<'_, HostState>, (ptr, len): (u32, u32)| {
                        Box::new(
                            async move { msg_set_bytes(Mode::Async, &mut caller, ptr, len).await },
                        )
                    },
                )?;
                linker.func_wrap_async(
                    module,
                    "v0_msg_get_meta",
                    |mut caller: Caller<'_, HostState>, (ptr, len): (u32, u32)| {
                        Box::new(
                            async move { msg_get_meta(Mode::Async, &mut caller, ptr, len).await },
                        )
                    },
                )?;
                linker.func_wrap_async(
                    module,
                    "v0_msg_set_meta",
                    |mut caller: Caller<'_, HostState>,
                     (key_ptr, key_len, ptr, len): (u32, u32, u32, u32)| {
                        Box::new(async move {
                            msg_set_meta(Mode::Async, &mut caller, (key_ptr, key_len), (ptr, len))
                                .await
                        })
                    },
                )?;
            }
        }
    }
    Ok(linker)
}

/// Refuses a call before the instance's state is there (from a module's
/// `start` section, which runs while it is instantiated): a trap, not a
/// panic of the host.
fn set_up(caller: &mut Caller<'_, HostState>) -> wasmtime::Result<()> {
    if is_set_up(caller.data_mut()) {
        Ok(())
    } else {
        Err(wasmtime::Error::msg(
            "a Benthos host function was called while the instance was being set up",
        ))
    }
}

/// What a host function failed at: the message is flagged with it, and
/// the guest gets an empty answer.
fn flag(caller: &mut Caller<'_, HostState>, error: String) {
    tracing::debug!(%error, "A Benthos host function failed; the message is flagged.");
    processing(caller.data_mut()).error = Some(error);
}

/// `v0_msg_as_bytes`.
async fn msg_as_bytes(mode: Mode, caller: &mut Caller<'_, HostState>) -> wasmtime::Result<i64> {
    set_up(caller)?;
    let Some(bytes) = processing(caller.data_mut())
        .message
        .as_ref()
        .map(|m| m.bytes.clone())
    else {
        flag(caller, "attempted to read bytes of deleted message".into());
        return Ok(0);
    };
    Ok(match copy_in(mode, caller, &bytes).await? {
        Ok(ptr) => ptr_len(ptr, bytes.len() as u32),
        Err(error) => {
            flag(
                caller,
                format!("failed to allocate in-bound memory: {error}"),
            );
            0
        }
    })
}

/// `v0_msg_set_bytes`.
async fn msg_set_bytes(
    mode: Mode,
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<()> {
    set_up(caller)?;
    match copy_out(mode, caller, ptr, len).await? {
        Ok(bytes) => {
            if let Some(message) = processing(caller.data_mut()).message.as_mut() {
                message.bytes = bytes;
            }
        }
        Err(error) => flag(caller, format!("failed to read out-bound memory: {error}")),
    }
    Ok(())
}

/// `v0_msg_get_meta`.
async fn msg_get_meta(
    mode: Mode,
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<i64> {
    set_up(caller)?;
    let key = match copy_out(mode, caller, ptr, len).await? {
        Ok(key) => key,
        Err(error) => {
            flag(
                caller,
                format!("failed to read out-bound meta key memory: {error}"),
            );
            return Ok(0);
        }
    };
    let value = processing(caller.data_mut())
        .message
        .as_ref()
        .and_then(|m| m.metadata.get(&*String::from_utf8_lossy(&key)).cloned())
        .unwrap_or_default();
    Ok(match copy_in(mode, caller, value.as_bytes()).await? {
        Ok(ptr) => ptr_len(ptr, value.len() as u32),
        Err(error) => {
            flag(
                caller,
                format!("failed to allocate in-bound memory: {error}"),
            );
            0
        }
    })
}

/// `v0_msg_set_meta`.
async fn msg_set_meta(
    mode: Mode,
    caller: &mut Caller<'_, HostState>,
    (key_ptr, key_len): (u32, u32),
    (ptr, len): (u32, u32),
) -> wasmtime::Result<()> {
    set_up(caller)?;
    let key = match copy_out(mode, caller, key_ptr, key_len).await? {
        Ok(key) => key,
        Err(error) => {
            flag(
                caller,
                format!("failed to read out-bound meta key memory: {error}"),
            );
            return Ok(());
        }
    };
    let value = match copy_out(mode, caller, ptr, len).await? {
        Ok(value) => value,
        Err(error) => {
            flag(
                caller,
                format!("failed to read out-bound meta value memory: {error}"),
            );
            return Ok(());
        }
    };
    if let Some(message) = processing(caller.data_mut()).message.as_mut() {
        message.metadata.insert(
            String::from_utf8_lossy(&key).into_owned(),
            String::from_utf8_lossy(&value).into_owned(),
        );
    }
    Ok(())
}
