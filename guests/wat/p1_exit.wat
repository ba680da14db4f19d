;; A wasi_snapshot_preview1 command: `_start` writes "bye\n" to stdout with
;; fd_write, then calls proc_exit(3).
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; The iovec at 0: the text at 16, 4 bytes long; bytes written go to 8.
  (data (i32.const 0) "\10\00\00\00\04\00\00\00")
  (data (i32.const 16) "bye\n")
  (func (export "_start")
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 3))))
