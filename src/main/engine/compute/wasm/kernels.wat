;; Alloy's CPU kernels: WebAssembly SIMD128 over one shared memory that every worker thread
;; instantiates. They compute exactly what compute/reference.ts computes: WebAssembly's f32
;; arithmetic is IEEE with round-to-nearest-even, subnormals kept and nothing fused; the one fused
;; step (linear's fma) is done in f64, rounded to odd, then to f32, which is exact (see "fma" below).
;;
;; Layout, set by the host (compute/wasm-backend.ts): input m of a call starts at `in + m*seg`
;; (bytes); a kernel computes elements [start, end), both multiples of 16 (the host pads). `bf_in`
;; and `bf_out` say whether the inputs and the output are bf16 (else f32; f16 is converted by the
;; host). `scratch` is 3 tiles of f32 that belong to the calling thread alone.
;;
;; Each kernel works a tile of up to 1024 elements at a time: bf16 inputs are widened into the
;; scratch tiles, the arithmetic runs on f32 tiles in a tight loop with no calls or branches, and a
;; bf16 output is narrowed from a scratch tile. (V8 does not inline WebAssembly calls by default, so
;; a call per vector would cost more than the arithmetic.)
;;
;; Build: node src/main/engine/compute/wasm/build-wasm.mjs (wabt from npm) writes kernels-wasm.ts.
(module
  (import "env" "memory" (memory 1 16384 shared))

  ;; Elements per tile, and bytes of one f32 tile.
  (global $tile i32 (i32.const 1024))
  (global $tile_bytes i32 (i32.const 4096))

  ;; $n bf16 at $src → $n f32 at $dst ($n a multiple of 8).
  (func $widen (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $v v128)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $v (v128.load align=2 (local.get $src)))
        (v128.store align=4 (local.get $dst) (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v)) (i32.const 16)))
        (v128.store offset=16 align=4 (local.get $dst) (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v)) (i32.const 16)))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
        (br $next))))

  ;; $n f32 at $src → $n bf16 at $dst, as torch rounds: to nearest even, every NaN 0x7fc0.
  (func $narrow (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $lo v128) (local $hi v128)
    (local $half v128) (local $one v128) (local $nan v128)
    (local.set $half (i32x4.splat (i32.const 0x7fff)))
    (local.set $one (i32x4.splat (i32.const 1)))
    (local.set $nan (i32x4.splat (i32.const 0x7fc0)))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $lo (v128.load align=4 (local.get $src)))
        (local.set $hi (v128.load offset=16 align=4 (local.get $src)))
        (v128.store align=2 (local.get $dst)
          (i16x8.narrow_i32x4_u
            (v128.bitselect
              (local.get $nan)
              (i32x4.shr_u
                (i32x4.add (i32x4.add (local.get $lo) (local.get $half)) (v128.and (i32x4.shr_u (local.get $lo) (i32.const 16)) (local.get $one)))
                (i32.const 16))
              (f32x4.ne (local.get $lo) (local.get $lo)))
            (v128.bitselect
              (local.get $nan)
              (i32x4.shr_u
                (i32x4.add (i32x4.add (local.get $hi) (local.get $half)) (v128.and (i32x4.shr_u (local.get $hi) (i32.const 16)) (local.get $one)))
                (i32.const 16))
              (f32x4.ne (local.get $hi) (local.get $hi)))))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (br $next))))

  ;; Where the f32 values of input m's tile at element $t are: the input itself, or (bf16) scratch
  ;; tile $slot after widening.
  (func $tile_in (param $in i32) (param $seg i32) (param $m i32) (param $t i32) (param $n i32)
                 (param $bf i32) (param $scratch i32) (param $slot i32) (result i32)
    (local $at i32)
    (local.set $at (i32.add (local.get $in) (i32.mul (local.get $m) (local.get $seg))))
    (if (result i32) (local.get $bf)
      (then
        (call $widen
          (i32.add (local.get $at) (i32.shl (local.get $t) (i32.const 1)))
          (i32.add (local.get $scratch) (i32.mul (local.get $slot) (global.get $tile_bytes)))
          (local.get $n))
        (i32.add (local.get $scratch) (i32.mul (local.get $slot) (global.get $tile_bytes))))
      (else (i32.add (local.get $at) (i32.shl (local.get $t) (i32.const 2))))))

  ;; Where a tile's f32 results go: the output itself, or (bf16) scratch tile 2, narrowed after.
  (func $tile_out (param $out i32) (param $t i32) (param $bf i32) (param $scratch i32) (result i32)
    (select
      (i32.add (local.get $scratch) (i32.mul (i32.const 2) (global.get $tile_bytes)))
      (i32.add (local.get $out) (i32.shl (local.get $t) (i32.const 2)))
      (local.get $bf)))

  (func $tile_done (param $out i32) (param $t i32) (param $n i32) (param $bf i32) (param $scratch i32)
    (if (local.get $bf)
      (then
        (call $narrow
          (i32.add (local.get $scratch) (i32.mul (i32.const 2) (global.get $tile_bytes)))
          (i32.add (local.get $out) (i32.shl (local.get $t) (i32.const 1)))
          (local.get $n)))))

  ;; s = fl64(p + c), rounded to odd instead: when inexact and even, one step toward the exact sum
  ;; (its error recovered by TwoSum) makes the last bit 1. Rounding that to f32 is rounding p + c
  ;; once, since f64 carries more than 24 + 2 bits (Boldo & Melquiond 2008).
  (func $round_odd (param $p v128) (param $c v128) (param $s v128) (result v128)
    (local $bb v128) (local $err v128)
    (local.set $bb (f64x2.sub (local.get $s) (local.get $p)))
    (local.set $err (f64x2.add (f64x2.sub (local.get $p) (f64x2.sub (local.get $s) (local.get $bb)))
                               (f64x2.sub (local.get $c) (local.get $bb))))
    (i64x2.add (local.get $s)
      (v128.and
        (v128.and
          (v128.and (f64x2.ne (local.get $err) (f64x2.splat (f64.const 0)))
                    (f64x2.lt (f64x2.abs (local.get $s)) (f64x2.splat (f64.const inf))))
          (i64x2.eq (v128.and (local.get $s) (i64x2.splat (i64.const 1))) (i64x2.splat (i64.const 0))))
        ;; +1 when s and the error have the same sign, else -1
        (v128.or (i64x2.shl (i64x2.lt_s (v128.xor (local.get $s) (local.get $err)) (i64x2.splat (i64.const 0))) (i32.const 1))
                 (i64x2.splat (i64.const 1))))))

  ;; linear: acc = fma(x_m, w_m, acc) from 0 over the inputs in order (torch's addcmul_, one
  ;; rounding), then acc / divisor if normalize. The weights are `count` f32 at `weights`.
  ;; fma: x*w is exact in f64 (24 + 24 bits); s = x*w + acc is rounded once in f64, then to f32;
  ;; where that double rounding could matter, s is rounded to odd first ($round_odd).
  (func (export "linear")
    (param $in i32) (param $seg i32) (param $count i32) (param $weights i32)
    (param $start i32) (param $end i32) (param $out i32) (param $bf_in i32) (param $bf_out i32)
    (param $normalize i32) (param $divisor f32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $m i32) (local $x i32) (local $acc i32) (local $i i32) (local $stop i32)
    (local $w v128) (local $xv v128) (local $cv v128) (local $div v128)
    (local $p v128) (local $s v128) (local $c v128) (local $p2 v128) (local $s2 v128) (local $c2 v128)
    (local $low29 v128) (local $half29 v128) (local $tiny v128)
    (local.set $low29 (i64x2.splat (i64.const 0x1fffffff)))
    (local.set $half29 (i64x2.splat (i64.const 0x10000000)))
    (local.set $tiny (f64x2.splat (f64.const 0x1p-126)))
    (local.set $div (f32x4.splat (local.get $divisor)))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (select (global.get $tile) (i32.sub (local.get $end) (local.get $t))
                              (i32.gt_u (i32.sub (local.get $end) (local.get $t)) (global.get $tile))))
        (local.set $acc (call $tile_out (local.get $out) (local.get $t) (local.get $bf_out) (local.get $scratch)))
        (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
        (memory.fill (local.get $acc) (i32.const 0) (local.get $stop))
        (local.set $m (i32.const 0))
        (block $models_done
          (loop $models
            (br_if $models_done (i32.ge_u (local.get $m) (local.get $count)))
            (local.set $x (call $tile_in (local.get $in) (local.get $seg) (local.get $m) (local.get $t) (local.get $n)
                                         (local.get $bf_in) (local.get $scratch) (i32.const 0)))
            (local.set $w (f64x2.splat (f64.promote_f32 (f32.load (i32.add (local.get $weights) (i32.shl (local.get $m) (i32.const 2)))))))
            ;; Four lanes a turn, as two f64x2 halves.
            (local.set $i (i32.const 0))
            (block $done
              (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                (local.set $xv (v128.load align=4 (i32.add (local.get $x) (local.get $i))))
                (local.set $cv (v128.load align=4 (i32.add (local.get $acc) (local.get $i))))
                (local.set $c (f64x2.promote_low_f32x4 (local.get $cv)))
                (local.set $c2 (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $cv) (local.get $cv))))
                (local.set $p (f64x2.mul (f64x2.promote_low_f32x4 (local.get $xv)) (local.get $w)))
                (local.set $p2 (f64x2.mul (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $xv) (local.get $xv))) (local.get $w)))
                (local.set $s (f64x2.add (local.get $p) (local.get $c)))
                (local.set $s2 (f64x2.add (local.get $p2) (local.get $c2)))
                ;; Rounding s to f32 can only go wrong where s sits exactly halfway between two f32:
                ;; normal ones (then its low 29 bits are 1 and 28 zeros) or subnormal ones (then
                ;; |s| < 2^-126). That is rare, so only those vectors take the exact path.
                (if (v128.any_true
                      (v128.or
                        (v128.or
                          (i64x2.eq (v128.and (local.get $s) (local.get $low29)) (local.get $half29))
                          (i64x2.eq (v128.and (local.get $s2) (local.get $low29)) (local.get $half29)))
                        (v128.or
                          (f64x2.lt (f64x2.abs (local.get $s)) (local.get $tiny))
                          (f64x2.lt (f64x2.abs (local.get $s2)) (local.get $tiny)))))
                  (then
                    (local.set $s (call $round_odd (local.get $p) (local.get $c) (local.get $s)))
                    (local.set $s2 (call $round_odd (local.get $p2) (local.get $c2) (local.get $s2)))))
                (v128.store align=4 (i32.add (local.get $acc) (local.get $i))
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
                    (f32x4.demote_f64x2_zero (local.get $s))
                    (f32x4.demote_f64x2_zero (local.get $s2))))
                (local.set $i (i32.add (local.get $i) (i32.const 16)))
                (br $next)))
            (local.set $m (i32.add (local.get $m) (i32.const 1)))
            (br $models)))
        (if (local.get $normalize)
          (then
            (local.set $i (i32.const 0))
            (block $done
              (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                (v128.store align=4 (i32.add (local.get $acc) (local.get $i))
                  (f32x4.div (v128.load align=4 (i32.add (local.get $acc) (local.get $i))) (local.get $div)))
                (local.set $i (i32.add (local.get $i) (i32.const 16)))
                (br $next)))))
        (call $tile_done (local.get $out) (local.get $t) (local.get $n) (local.get $bf_out) (local.get $scratch))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; nearswap: input 0 is the base a, input 1 the other b.
  ;; w = min(max(t * (1 / max(|a - b|, 1e-6)), 0), 1); out = w*b + (1 - w)*a.
  (func (export "nearswap")
    (param $in i32) (param $seg i32) (param $start i32) (param $end i32) (param $out i32)
    (param $bf_in i32) (param $bf_out i32) (param $tv f32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $pa i32) (local $pb i32) (local $po i32) (local $i i32) (local $stop i32)
    (local $a v128) (local $b v128) (local $w v128) (local $k v128) (local $one v128) (local $zero v128) (local $lo v128)
    (local.set $k (f32x4.splat (local.get $tv)))
    (local.set $one (f32x4.splat (f32.const 1)))
    (local.set $zero (f32x4.splat (f32.const 0)))
    (local.set $lo (i32x4.splat (i32.const 0x358637bd)))  ;; Math.fround(1e-6)
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (select (global.get $tile) (i32.sub (local.get $end) (local.get $t))
                              (i32.gt_u (i32.sub (local.get $end) (local.get $t)) (global.get $tile))))
        (local.set $pa (call $tile_in (local.get $in) (local.get $seg) (i32.const 0) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 0)))
        (local.set $pb (call $tile_in (local.get $in) (local.get $seg) (i32.const 1) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 1)))
        (local.set $po (call $tile_out (local.get $out) (local.get $t) (local.get $bf_out) (local.get $scratch)))
        (local.set $i (i32.const 0))
        (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
            (local.set $a (v128.load align=4 (i32.add (local.get $pa) (local.get $i))))
            (local.set $b (v128.load align=4 (i32.add (local.get $pb) (local.get $i))))
            ;; pmax/pmin (one instruction each; f32x4.max/min are long sequences in V8) give
            ;; Math.max/Math.min's results here: |a-b| >= +0, and max(x, 0) as pmax(0, x) turns -0
            ;; into +0. Only a NaN x differs (0, not NaN), and then the output is NaN either way.
            (local.set $w
              (f32x4.pmin
                (f32x4.pmax
                  (local.get $zero)
                  (f32x4.mul
                    (f32x4.div (local.get $one) (f32x4.pmax (f32x4.abs (f32x4.sub (local.get $a) (local.get $b))) (local.get $lo)))
                    (local.get $k)))
                (local.get $one)))
            (v128.store align=4 (i32.add (local.get $po) (local.get $i))
              (f32x4.add
                (f32x4.mul (local.get $w) (local.get $b))
                (f32x4.mul (f32x4.sub (local.get $one) (local.get $w)) (local.get $a))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $next)))
        (call $tile_done (local.get $out) (local.get $t) (local.get $n) (local.get $bf_out) (local.get $scratch))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; blend2: out = c0*a + c1*b, each product rounded to f32 (slerp's last pass).
  (func (export "blend2")
    (param $in i32) (param $seg i32) (param $start i32) (param $end i32) (param $out i32)
    (param $bf_in i32) (param $bf_out i32) (param $c0 f32) (param $c1 f32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $pa i32) (local $pb i32) (local $po i32) (local $i i32) (local $stop i32)
    (local $k0 v128) (local $k1 v128)
    (local.set $k0 (f32x4.splat (local.get $c0)))
    (local.set $k1 (f32x4.splat (local.get $c1)))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (select (global.get $tile) (i32.sub (local.get $end) (local.get $t))
                              (i32.gt_u (i32.sub (local.get $end) (local.get $t)) (global.get $tile))))
        (local.set $pa (call $tile_in (local.get $in) (local.get $seg) (i32.const 0) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 0)))
        (local.set $pb (call $tile_in (local.get $in) (local.get $seg) (i32.const 1) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 1)))
        (local.set $po (call $tile_out (local.get $out) (local.get $t) (local.get $bf_out) (local.get $scratch)))
        (local.set $i (i32.const 0))
        (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
            (v128.store align=4 (i32.add (local.get $po) (local.get $i))
              (f32x4.add
                (f32x4.mul (local.get $k0) (v128.load align=4 (i32.add (local.get $pa) (local.get $i))))
                (f32x4.mul (local.get $k1) (v128.load align=4 (i32.add (local.get $pb) (local.get $i))))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $next)))
        (call $tile_done (local.get $out) (local.get $t) (local.get $n) (local.get $bf_out) (local.get $scratch))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; ---- task arithmetic (compute/reference.ts taskArithmeticF32), four elements a turn ----

  ;; Four elements of input $m at element $i: bf16 widened, or f32 as they are.
  (func $ld4 (param $in i32) (param $seg i32) (param $m i32) (param $i i32) (param $bf i32) (result v128)
    (local $at i32)
    (local.set $at (i32.add (local.get $in) (i32.mul (local.get $m) (local.get $seg))))
    (if (result v128) (local.get $bf)
      (then (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero align=2 (i32.add (local.get $at) (i32.shl (local.get $i) (i32.const 1))))) (i32.const 16)))
      (else (v128.load align=4 (i32.add (local.get $at) (i32.shl (local.get $i) (i32.const 2)))))))

  ;; f32 bits → bf16 bits in the low half of each lane, as torch rounds (nearest even, NaN 0x7fc0).
  (func $bf16 (param $x v128) (result v128)
    (v128.bitselect
      (i32x4.splat (i32.const 0x7fc0))
      (i32x4.shr_u
        (i32x4.add (i32x4.add (local.get $x) (i32x4.splat (i32.const 0x7fff)))
                   (v128.and (i32x4.shr_u (local.get $x) (i32.const 16)) (i32x4.splat (i32.const 1))))
        (i32.const 16))
      (f32x4.ne (local.get $x) (local.get $x))))

  ;; A step rounded to the compute dtype: to bf16 and back where $bf is all ones, else as it is.
  (func $rnd (param $x v128) (param $bf v128) (result v128)
    (v128.bitselect (i32x4.shl (call $bf16 (local.get $x)) (i32.const 16)) (local.get $x) (local.get $bf)))

  ;; Model $j's keep mask (all ones where kept) for four elements at $i: all; DARE's counter hash
  ;; (methods/random-mask.ts uniformAt(key, index) < density, as z < threshold); or mask bytes.
  (func $keep4 (param $in i32) (param $seg i32) (param $count i32) (param $params i32) (param $j i32) (param $i i32)
               (param $idx_lo i32) (param $idx_hi i32) (result v128)
    (local $kind i32) (local $e v128) (local $lo v128) (local $z v128)
    (local.set $kind (i32.load offset=256 (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 2)))))
    (if (i32.eqz (local.get $kind)) (then (return (i32x4.splat (i32.const -1)))))
    (if (i32.eq (local.get $kind) (i32.const 1))
      (then
        (local.set $e (i32x4.add (i32x4.splat (local.get $i)) (v128.const i32x4 0 1 2 3)))
        (local.set $lo (i32x4.add (i32x4.splat (local.get $idx_lo)) (local.get $e)))
        (local.set $z
          (v128.xor
            (v128.xor (i32x4.splat (i32.load offset=128 (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 2)))))
                      (i32x4.mul (local.get $lo) (i32x4.splat (i32.const 0x9e3779b9))))
            ;; the index's high word: idx_hi, plus 1 where the low word wrapped
            (i32x4.sub (i32x4.splat (local.get $idx_hi)) (i32x4.lt_u (local.get $lo) (local.get $e)))))
        (local.set $z (i32x4.mul (v128.xor (local.get $z) (i32x4.shr_u (local.get $z) (i32.const 16))) (i32x4.splat (i32.const 0x85ebca6b))))
        (local.set $z (i32x4.mul (v128.xor (local.get $z) (i32x4.shr_u (local.get $z) (i32.const 13))) (i32x4.splat (i32.const 0xc2b2ae35))))
        (local.set $z (v128.xor (local.get $z) (i32x4.shr_u (local.get $z) (i32.const 16))))
        (return (i32x4.lt_u (local.get $z) (i32x4.splat (i32.load offset=192 (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 2)))))))))
    (i32x4.ne
      (i32x4.extend_low_i16x8_u (i16x8.extend_low_i8x16_u
        (v128.load32_zero align=1
          (i32.add (i32.add (local.get $in) (i32.mul (i32.add (local.get $count) (i32.sub (local.get $kind) (i32.const 1))) (local.get $seg)))
                   (local.get $i)))))
      (i32x4.splat (i32.const 0))))

  ;; task: input 0 is the base, inputs 1..count the models; per model at $params: weights (f32,
  ;; +0), scales (f32, +64), DARE keys (+128) and thresholds (+192), mask kinds (+256: 0 all,
  ;; 1 DARE, 2 + k mask segment count + 1 + k, one byte per element). $idx_lo/$idx_hi: the index in
  ;; the tensor of the window's element 0. $flags: 1 consensus, 2 normalize, 4 lambda, 8 bf16 steps.
  ;; Each model's d_j waits in $scratch (16 bytes a model) for the sign election.
  (func (export "task")
    (param $in i32) (param $seg i32) (param $count i32) (param $params i32)
    (param $start i32) (param $end i32) (param $out i32) (param $bf_in i32) (param $bf_out i32)
    (param $idx_lo i32) (param $idx_hi i32) (param $flags i32) (param $divisor f32) (param $lambda f32) (param $scratch i32)
    (local $i i32) (local $j i32) (local $bf v128) (local $b v128) (local $delta v128) (local $d v128) (local $s f32)
    (local $mixed v128) (local $div v128) (local $vote v128) (local $up v128) (local $agrees v128) (local $r v128)
    (local.set $bf (i32x4.splat (i32.sub (i32.const 0) (i32.shr_u (i32.and (local.get $flags) (i32.const 8)) (i32.const 3)))))
    (local.set $i (local.get $start))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $b (call $ld4 (local.get $in) (local.get $seg) (i32.const 0) (local.get $i) (local.get $bf_in)))
        (local.set $j (i32.const 0))
        (block $models_done
          (loop $models
            (br_if $models_done (i32.ge_u (local.get $j) (local.get $count)))
            (local.set $delta
              (v128.and
                (call $rnd (f32x4.sub (call $ld4 (local.get $in) (local.get $seg) (i32.add (local.get $j) (i32.const 1)) (local.get $i) (local.get $bf_in)) (local.get $b)) (local.get $bf))
                (call $keep4 (local.get $in) (local.get $seg) (local.get $count) (local.get $params) (local.get $j) (local.get $i) (local.get $idx_lo) (local.get $idx_hi))))
            (local.set $s (f32.load offset=64 (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 2)))))
            (if (f32.ne (local.get $s) (f32.const 1))
              (then (local.set $delta (call $rnd (f32x4.mul (local.get $delta) (f32x4.splat (local.get $s))) (local.get $bf)))))
            (v128.store align=4 (i32.add (local.get $scratch) (i32.shl (local.get $j) (i32.const 4)))
              (call $rnd (f32x4.mul (local.get $delta) (f32x4.splat (f32.load (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 2)))))) (local.get $bf)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $models)))
        (local.set $mixed (f32x4.splat (f32.const 0)))
        (if (i32.and (local.get $flags) (i32.const 1))
          (then
            (local.set $vote (f32x4.splat (f32.const 0)))
            (local.set $j (i32.const 0))
            (block $v_done
              (loop $v
                (br_if $v_done (i32.ge_u (local.get $j) (local.get $count)))
                (local.set $vote (f32x4.add (local.get $vote) (v128.load align=4 (i32.add (local.get $scratch) (i32.shl (local.get $j) (i32.const 4))))))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $v)))
            (local.set $up (f32x4.ge (local.get $vote) (f32x4.splat (f32.const 0))))
            (local.set $div (f32x4.splat (f32.const 0)))
            (local.set $j (i32.const 0))
            (block $a_done
              (loop $a
                (br_if $a_done (i32.ge_u (local.get $j) (local.get $count)))
                (local.set $d (v128.load align=4 (i32.add (local.get $scratch) (i32.shl (local.get $j) (i32.const 4)))))
                (local.set $agrees (v128.bitselect (f32x4.gt (local.get $d) (f32x4.splat (f32.const 0)))
                                                   (f32x4.lt (local.get $d) (f32x4.splat (f32.const 0)))
                                                   (local.get $up)))
                (local.set $mixed (f32x4.add (local.get $mixed) (v128.and (local.get $d) (local.get $agrees))))
                (local.set $div (f32x4.add (local.get $div)
                  (v128.and (f32x4.splat (f32.load (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 2))))) (local.get $agrees))))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $a)))
            (local.set $div (call $rnd (local.get $div) (local.get $bf)))
            (local.set $div (v128.bitselect (f32x4.splat (f32.const 1)) (local.get $div) (f32x4.eq (local.get $div) (f32x4.splat (f32.const 0))))))
          (else
            (local.set $j (i32.const 0))
            (block $s_done
              (loop $sum
                (br_if $s_done (i32.ge_u (local.get $j) (local.get $count)))
                (local.set $mixed (f32x4.add (local.get $mixed) (v128.load align=4 (i32.add (local.get $scratch) (i32.shl (local.get $j) (i32.const 4))))))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $sum)))
            (local.set $div (f32x4.splat (local.get $divisor)))))
        (local.set $mixed (call $rnd (local.get $mixed) (local.get $bf)))
        (if (i32.and (local.get $flags) (i32.const 2))
          (then (local.set $mixed (call $rnd (f32x4.div (local.get $mixed) (local.get $div)) (local.get $bf)))))
        (if (i32.and (local.get $flags) (i32.const 4))
          (then (local.set $mixed (call $rnd (f32x4.mul (local.get $mixed) (f32x4.splat (local.get $lambda))) (local.get $bf)))))
        (local.set $r (call $rnd (f32x4.add (local.get $b) (local.get $mixed)) (local.get $bf)))
        (if (local.get $bf_out)
          (then (v128.store64_lane align=2 0 (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 1)))
                  (i16x8.narrow_i32x4_u (call $bf16 (local.get $r)) (call $bf16 (local.get $r)))))
          (else (v128.store align=4 (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2))) (local.get $r))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $next))))
)
