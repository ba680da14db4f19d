;; A Fluent Bit filter whose heap owns the end of memory, as TinyGo's does:
;; `malloc` bumps from 1024 to the end of memory and grows memory for
;; itself, taking every page it grows as its own. Pages grown by anyone
;; else would be taken for heap too, so the host must copy records through
;; `malloc` and give them back with `free`. `filter_heap` answers
;; {"heap":"ok"} when the tag and the record are the two latest `malloc`
;; results, no page was grown behind the heap's back and every earlier copy
;; was freed; {"heap":"corrupt"} otherwise.
(module
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (global $pages (mut i32) (i32.const 1))
  (global $allocs (mut i32) (i32.const 0))
  (global $frees (mut i32) (i32.const 0))
  (global $before_last (mut i32) (i32.const 0))
  (global $last (mut i32) (i32.const 0))
  (data (i32.const 16) "{\"heap\":\"ok\"}\00")
  (data (i32.const 64) "{\"heap\":\"corrupt\"}\00")

  (func (export "malloc") (param $size i32) (result i32)
    (local $at i32) (local $end i32)
    (local.set $at (global.get $next))
    ;; 8-byte aligned, as a real allocator answers.
    (local.set $end
      (i32.and (i32.add (i32.add (local.get $at) (local.get $size)) (i32.const 7))
               (i32.const -8)))
    (if (i32.gt_u (local.get $end) (i32.mul (global.get $pages) (i32.const 65536)))
      (then
        ;; The heap grows by what it needs, and counts the end of memory
        ;; as its own from then on.
        (drop (memory.grow
          (i32.sub (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
                   (global.get $pages))))
        (global.set $pages (memory.size))))
    (global.set $next (local.get $end))
    (global.set $allocs (i32.add (global.get $allocs) (i32.const 1)))
    (global.set $before_last (global.get $last))
    (global.set $last (local.get $at))
    (local.get $at))

  (func (export "free") (param $ptr i32)
    (global.set $frees (i32.add (global.get $frees) (i32.const 1))))

  (func (export "filter_heap")
    (param $tag i32) (param $tag_len i32) (param $sec i32) (param $nsec i32)
    (param $record i32) (param $record_len i32) (result i32)
    (if (result i32)
      (i32.and
        (i32.and
          (i32.eq (local.get $tag) (global.get $before_last))
          (i32.eq (local.get $record) (global.get $last)))
        (i32.and
          (i32.eq (memory.size) (global.get $pages))
          (i32.eq (i32.add (global.get $frees) (i32.const 2)) (global.get $allocs))))
      (then (i32.const 16))
      (else (i32.const 64))))
)
