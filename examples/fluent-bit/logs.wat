;; An `exec_wasi` program: a WASI preview 1 command that prints three JSON
;; log lines on stdout, as a program Fluent Bit runs with `exec_wasi` does.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64)
    "{\"level\":\"info\",\"message\":\"service started\"}\n"
    "{\"level\":\"debug\",\"message\":\"cache warmed\"}\n"
    "{\"level\":\"error\",\"message\":\"disk almost full\"}\n")
  (func (export "_start")
    ;; One iovec at 0: the lines at 64, 135 bytes.
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 135))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
)
