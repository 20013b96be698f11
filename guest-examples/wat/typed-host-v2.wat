;; A typed step importing weir:step/host from another package version (0.2.0) than the
;; one weir provides (0.1.0): refused at upload, naming the import.
(component
  (import "weir:step/host@0.2.0" (instance $host
    (export "log" (func (param "message" string)))))
  (core module $m
    (func (export "run") (param i32) (result i32) local.get 0))
  (core instance $i (instantiate $m))
  (func $run (param "input" u32) (result u32) (canon lift (core func $i "run")))
  (instance $handler (export "run" (func $run)))
  (export "weir:step/handler@0.1.0" (instance $handler)))
