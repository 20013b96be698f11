;; A component exporting weir:step/handler@0.2.0: a typed step for another weir, refused at
;; upload, naming the export.
(component
  (core module $m
    (func (export "run") (param i32) (result i32) local.get 0))
  (core instance $i (instantiate $m))
  (func $run (param "input" u32) (result u32) (canon lift (core func $i "run")))
  (instance $handler (export "run" (func $run)))
  (export "weir:step/handler@0.2.0" (instance $handler)))
