;; Alloy's CPU kernels: WebAssembly SIMD128 over one shared memory that every worker thread
;; instantiates. They compute exactly what compute/reference.ts computes: WebAssembly's f32
;; arithmetic is IEEE with round-to-nearest-even, subnormals kept and nothing fused; the one fused
;; step (linear's fma) is done in f64, rounded to odd, then to f32, which is exact (see "fma" below).
;;
;; Layout, set by the host (compute/wasm-backend.ts): `in` is a table of addresses, input m's
;; elements (then mask k's bytes) start at the address in its entry m (`seg` is unused); an input
;; is where the host keeps it, or a copy. A kernel computes elements [start, end), both multiples of
;; 16 (the host pads a copied window, and runs the last < 32 elements of one in place as a copy). `bf_in`
;; and `bf_out` say whether the inputs and the output are bf16 (else f32; f16 is converted by the
;; host). `scratch` is the calling thread's own: tiles of f32, and (dhist) its histograms.
;;
;; Each kernel works a tile of up to 1024 elements at a time: bf16 inputs are widened into the
;; scratch tiles, the arithmetic runs on f32 tiles in a tight loop with no calls or branches, and a
;; bf16 output is narrowed from a scratch tile. (V8 does not inline WebAssembly calls by default, so
;; a call per vector would cost more than the arithmetic.)
;;
;; Build: node src/main/engine/compute/wasm/build-wasm.mjs (wabt from npm) writes kernels-wasm.ts.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; Elements per tile, and bytes of one f32 tile.
  (global $tile i32 (i32.const 1024))
  (global $tile_bytes i32 (i32.const 4096))

  ;; $n bf16 at $src → $n f32 at $dst ($n a multiple of 8). In place, forward, when $src is the upper
  ;; half of $dst's 4$n bytes: each store ends at or before the next load.
  (func $widen (export "widen") (param $src i32) (param $dst i32) (param $n i32)
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

  ;; bf16_as_f16: $n bf16 at $src → the f32 values of their f16 rounding at $dst ($n a multiple of 4):
  ;; torch's `.to(float16)` of bf16 weights, as safetensors/convert.ts f32BitsRoundedToF16 gives it
  ;; ($rnd_f16, but a NaN keeps its sign as f16 NaNs do there).
  (func (export "bf16_as_f16") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $x v128) (local $a v128) (local $c v128)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $x (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero align=2 (local.get $src))) (i32.const 16)))
        (local.set $a (v128.and (local.get $x) (i32x4.splat (i32.const 0x7fffffff))))
        (local.set $c
          (i32x4.add (i32x4.max_u (v128.and (local.get $x) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000)))
                     (i32x4.splat (i32.const 0x06800000))))
        (v128.store align=4 (local.get $dst)
          (v128.or
            (v128.and (local.get $x) (i32x4.splat (i32.const 0x80000000)))
            (v128.bitselect
              (i32x4.splat (i32.const 0x7fc00000))
              (v128.bitselect
                (i32x4.splat (i32.const 0x7f800000))
                (f32x4.sub (f32x4.add (local.get $a) (local.get $c)) (local.get $c))
                (i32x4.ge_u (local.get $a) (i32x4.splat (i32.const 0x477ff000))))
              (i32x4.gt_u (local.get $a) (i32x4.splat (i32.const 0x7f800000))))))
        (local.set $src (i32.add (local.get $src) (i32.const 8)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
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

;; $n f16 at $src → $n f32 at $dst ($n a multiple of 8), exactly (f16 codes widened as
  ;; safetensors/convert.ts's f16ToF32Bits: NaN payloads kept). In place, forward, as $widen.
  (func (export "widen16") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $v v128)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $v (v128.load align=2 (local.get $src)))
        (v128.store align=4 (local.get $dst) (call $f32_of_f16 (i32x4.extend_low_i16x8_u (local.get $v))))
        (v128.store offset=16 align=4 (local.get $dst) (call $f32_of_f16 (i32x4.extend_high_i16x8_u (local.get $v))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
        (br $next))))

  ;; Four f16 codes (one a lane) → their f32 bits: the exponent and mantissa shifted into place and
  ;; scaled by 2^112 (exact for normals and subnormals alike), ∞ and NaN given f32's top exponent.
  (func $f32_of_f16 (param $h v128) (result v128)
    (local $o v128)
    (local.set $o (i32x4.shl (v128.and (local.get $h) (i32x4.splat (i32.const 0x7fff))) (i32.const 13)))
    (v128.or
      (v128.bitselect
        (v128.or (local.get $o) (i32x4.splat (i32.const 0x7f800000)))
        (f32x4.mul (local.get $o) (f32x4.splat (f32.const 0x1p112)))
        (i32x4.eq (v128.and (local.get $h) (i32x4.splat (i32.const 0x7c00))) (i32x4.splat (i32.const 0x7c00))))
      (i32x4.shl (v128.and (local.get $h) (i32x4.splat (i32.const 0x8000))) (i32.const 16))))

  ;; $n f32 at $src → $n f16 at $dst ($n a multiple of 8), as safetensors/convert.ts's f32BitsToF16:
  ;; nearest even, subnormals kept, overflow to ±∞, NaN 0x7e00 with its sign. In place, forward.
  (func (export "narrow16") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (v128.store align=2 (local.get $dst)
          (i16x8.narrow_i32x4_u
            (call $f16_of_f32 (v128.load align=4 (local.get $src)))
            (call $f16_of_f32 (v128.load offset=16 align=4 (local.get $src)))))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (br $next))))

  ;; Four f32 → their f16 codes (one a lane): a normal f16 by rounding the mantissa at bit 13 and
  ;; rebiasing; below 2^-14 by x + 0.5 − 0.5 (a multiple of 2^-24) times 2^24; from 65520 up ∞.
  (func $f16_of_f32 (param $x v128) (result v128)
    (local $a v128) (local $r v128) (local $sub v128)
    (local.set $a (v128.and (local.get $x) (i32x4.splat (i32.const 0x7fffffff))))
    (local.set $r
      (i32x4.sub
        (i32x4.shr_u
          (i32x4.add (i32x4.add (local.get $a) (i32x4.splat (i32.const 0x0fff)))
                     (v128.and (i32x4.shr_u (local.get $a) (i32.const 13)) (i32x4.splat (i32.const 1))))
          (i32.const 13))
        (i32x4.splat (i32.const 0x1c000))))
    (local.set $sub
      (i32x4.trunc_sat_f32x4_s
        (f32x4.mul
          (f32x4.sub (f32x4.add (local.get $a) (f32x4.splat (f32.const 0.5))) (f32x4.splat (f32.const 0.5)))
          (f32x4.splat (f32.const 0x1p24)))))
    (local.set $r (v128.bitselect (local.get $sub) (local.get $r) (i32x4.lt_u (local.get $a) (i32x4.splat (i32.const 0x38800000)))))
    (local.set $r (v128.bitselect (i32x4.splat (i32.const 0x7c00)) (local.get $r) (i32x4.ge_u (local.get $a) (i32x4.splat (i32.const 0x477ff000)))))
    (local.set $r (v128.bitselect (i32x4.splat (i32.const 0x7e00)) (local.get $r) (i32x4.gt_u (local.get $a) (i32x4.splat (i32.const 0x7f800000)))))
    (v128.or (local.get $r) (i32x4.shr_u (v128.and (local.get $x) (i32x4.splat (i32.const 0x80000000))) (i32.const 16))))

  ;; Where the f32 values of input m's tile at element $t are: the input itself, or (bf16) scratch
  ;; tile $slot after widening.
  (func $tile_in (param $in i32) (param $seg i32) (param $m i32) (param $t i32) (param $n i32)
                 (param $bf i32) (param $scratch i32) (param $slot i32) (result i32)
    (local $at i32)
    (local.set $at (i32.load (i32.add (local.get $in) (i32.shl (local.get $m) (i32.const 2)))))
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
  ;; rounding), then acc / divisor if normalize. The weights are `count` f32 at `weights`. With
  ;; $step (16-bit steps: 1 bf16, 2 f16), each model's acc and the quotient are rounded ($rnd_tile).
  ;; fma: x*w is exact in f64 (24 + 24 bits); s = x*w + acc is rounded once in f64, then to f32;
  ;; where that double rounding could matter, s is rounded to odd first ($round_odd).
  (func (export "linear")
    (param $in i32) (param $seg i32) (param $count i32) (param $weights i32)
    (param $start i32) (param $end i32) (param $out i32) (param $bf_in i32) (param $bf_out i32)
    (param $normalize i32) (param $divisor f32) (param $step i32) (param $scratch i32)
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
            (local.set $i (i32.const 0))
            ;; The first model: fma(x, w, +0) is x*w rounded once, but an exact -0 product (x or w
            ;; ±0) becomes +0 (-0 + +0), which adding +0 does too; a nonzero product that rounds to
            ;; -0 (underflow) stays -0, as the exact sum is the product itself. No f64 needed.
            (if (i32.eqz (local.get $m))
              (then
                (local.set $cv (f32x4.splat (f32.load (local.get $weights))))
                (block $first_done
                  (loop $first
                    (br_if $first_done (i32.ge_u (local.get $i) (local.get $stop)))
                    (local.set $xv (v128.load align=4 (i32.add (local.get $x) (local.get $i))))
                    (local.set $p (f32x4.mul (local.get $xv) (local.get $cv)))
                    (v128.store align=4 (i32.add (local.get $acc) (local.get $i))
                      (v128.bitselect
                        (local.get $p)
                        (f32x4.add (local.get $p) (f32x4.splat (f32.const 0)))
                        (v128.and
                          (f32x4.eq (local.get $p) (f32x4.splat (f32.const 0)))
                          (v128.and (f32x4.ne (local.get $xv) (f32x4.splat (f32.const 0)))
                                    (f32x4.ne (local.get $cv) (f32x4.splat (f32.const 0)))))))
                    (local.set $i (i32.add (local.get $i) (i32.const 16)))
                    (br $first)))))
            ;; Four lanes a turn, as two f64x2 halves.
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
            (if (local.get $step) (then (call $rnd_tile (local.get $acc) (local.get $n) (local.get $step))))
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
                (br $next)))
            (if (local.get $step) (then (call $rnd_tile (local.get $acc) (local.get $n) (local.get $step))))))
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

  ;; blend2: out = c0*a + c1*b, each product rounded to f32 (slerp's last pass). With $step (1 bf16,
  ;; 2 f16 steps): out = r(r(c0*a) + r(c1*b)), r rounding each f32 result to the step as torch rounds
  ;; (nearest even), in registers.
  (func (export "blend2")
    (param $in i32) (param $seg i32) (param $start i32) (param $end i32) (param $out i32)
    (param $bf_in i32) (param $bf_out i32) (param $c0 f32) (param $c1 f32) (param $step i32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $pa i32) (local $pb i32) (local $po i32) (local $i i32) (local $stop i32)
    (local $k0 v128) (local $k1 v128) (local $p v128) (local $q v128)
    (local $nan v128) (local $half v128) (local $one_i v128) (local $hi16 v128)
    (local.set $k0 (f32x4.splat (local.get $c0)))
    (local.set $k1 (f32x4.splat (local.get $c1)))
    (local.set $nan (i32x4.splat (i32.const 0x7fc00000)))
    (local.set $half (i32x4.splat (i32.const 0x7fff)))
    (local.set $one_i (i32x4.splat (i32.const 1)))
    (local.set $hi16 (i32x4.splat (i32.const 0xffff0000)))
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
        (if (local.get $step)
          (then
            (block $done
              (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                (local.set $p (f32x4.mul (local.get $k0) (v128.load align=4 (i32.add (local.get $pa) (local.get $i)))))
                (local.set $p (if (result v128) (i32.eq (local.get $step) (i32.const 2)) (then (v128.bitselect ;; $rnd_f16, inlined
                    (i32x4.splat (i32.const 0x7fc00000))
                    (v128.or
                      (v128.bitselect
                        (i32x4.splat (i32.const 0x7f800000))
                        (f32x4.sub (f32x4.add (v128.and (local.get $p) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                        (i32x4.ge_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
                      (v128.and (local.get $p) (i32x4.splat (i32.const 0x80000000))))
                    (i32x4.gt_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))) (else (v128.bitselect (local.get $nan) (v128.and (i32x4.add (i32x4.add (local.get $p) (local.get $half)) (v128.and (i32x4.shr_u (local.get $p) (i32.const 16)) (local.get $one_i))) (local.get $hi16)) (f32x4.ne (local.get $p) (local.get $p))))))
                (local.set $q (f32x4.mul (local.get $k1) (v128.load align=4 (i32.add (local.get $pb) (local.get $i)))))
                (local.set $q (if (result v128) (i32.eq (local.get $step) (i32.const 2)) (then (v128.bitselect ;; $rnd_f16, inlined
                    (i32x4.splat (i32.const 0x7fc00000))
                    (v128.or
                      (v128.bitselect
                        (i32x4.splat (i32.const 0x7f800000))
                        (f32x4.sub (f32x4.add (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                        (i32x4.ge_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
                      (v128.and (local.get $q) (i32x4.splat (i32.const 0x80000000))))
                    (i32x4.gt_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))) (else (v128.bitselect (local.get $nan) (v128.and (i32x4.add (i32x4.add (local.get $q) (local.get $half)) (v128.and (i32x4.shr_u (local.get $q) (i32.const 16)) (local.get $one_i))) (local.get $hi16)) (f32x4.ne (local.get $q) (local.get $q))))))
                (local.set $p (f32x4.add (local.get $p) (local.get $q)))
                (v128.store align=4 (i32.add (local.get $po) (local.get $i))
                  (if (result v128) (i32.eq (local.get $step) (i32.const 2)) (then (v128.bitselect ;; $rnd_f16, inlined
                      (i32x4.splat (i32.const 0x7fc00000))
                      (v128.or
                        (v128.bitselect
                          (i32x4.splat (i32.const 0x7f800000))
                          (f32x4.sub (f32x4.add (v128.and (local.get $p) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                          (i32x4.ge_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
                        (v128.and (local.get $p) (i32x4.splat (i32.const 0x80000000))))
                      (i32x4.gt_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))) (else (v128.bitselect (local.get $nan) (v128.and (i32x4.add (i32x4.add (local.get $p) (local.get $half)) (v128.and (i32x4.shr_u (local.get $p) (i32.const 16)) (local.get $one_i))) (local.get $hi16)) (f32x4.ne (local.get $p) (local.get $p))))))
                (local.set $i (i32.add (local.get $i) (i32.const 16)))
                (br $next))))
          (else
            (block $done
              (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                (v128.store align=4 (i32.add (local.get $po) (local.get $i))
                  (f32x4.add
                    (f32x4.mul (local.get $k0) (v128.load align=4 (i32.add (local.get $pa) (local.get $i))))
                    (f32x4.mul (local.get $k1) (v128.load align=4 (i32.add (local.get $pb) (local.get $i))))))
                (local.set $i (i32.add (local.get $i) (i32.const 16)))
                (br $next)))))
        (call $tile_done (local.get $out) (local.get $t) (local.get $n) (local.get $bf_out) (local.get $scratch))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; usum: out = Σ_m f(f(x_m / d_m) · w_m), added in f32 in input order from the zero at $params + 128
  ;; (+0 as torch sums, or −0) (multislerp's weighted mean of the unit vectors). The divisors d are
  ;; `count` f32 at $params, the weights w `count` f32 at $params + 64. With $step (1 bf16, 2 f16
  ;; steps) each quotient and product is rounded in registers, and the sum once it is complete.
  (func (export "usum")
    (param $in i32) (param $seg i32) (param $count i32) (param $params i32)
    (param $start i32) (param $end i32) (param $out i32) (param $bf_in i32) (param $bf_out i32) (param $step i32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $m i32) (local $x i32) (local $acc i32) (local $i i32) (local $stop i32)
    (local $d v128) (local $w v128) (local $zero v128) (local $q v128)
    (local.set $zero (v128.load32_splat offset=128 (local.get $params)))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (select (global.get $tile) (i32.sub (local.get $end) (local.get $t))
                              (i32.gt_u (i32.sub (local.get $end) (local.get $t)) (global.get $tile))))
        (local.set $acc (call $tile_out (local.get $out) (local.get $t) (local.get $bf_out) (local.get $scratch)))
        (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
        (local.set $i (i32.const 0))
        (block $filled
          (loop $fill
            (br_if $filled (i32.ge_u (local.get $i) (local.get $stop)))
            (v128.store align=4 (i32.add (local.get $acc) (local.get $i)) (local.get $zero))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $fill)))
        (local.set $m (i32.const 0))
        (block $models_done
          (loop $models
            (br_if $models_done (i32.ge_u (local.get $m) (local.get $count)))
            (local.set $x (call $tile_in (local.get $in) (local.get $seg) (local.get $m) (local.get $t) (local.get $n)
                                         (local.get $bf_in) (local.get $scratch) (i32.const 0)))
            (local.set $d (f32x4.splat (f32.load (i32.add (local.get $params) (i32.shl (local.get $m) (i32.const 2))))))
            (local.set $w (f32x4.splat (f32.load offset=64 (i32.add (local.get $params) (i32.shl (local.get $m) (i32.const 2))))))
            (local.set $i (i32.const 0))
            (if (local.get $step)
              (then
                (block $done
                  (loop $next
                    (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                    (local.set $q (f32x4.div (v128.load align=4 (i32.add (local.get $x) (local.get $i))) (local.get $d)))
                    (local.set $q (f32x4.mul (if (result v128) (i32.eq (local.get $step) (i32.const 2)) (then (v128.bitselect ;; $rnd_f16, inlined
                        (i32x4.splat (i32.const 0x7fc00000))
                        (v128.or
                          (v128.bitselect
                            (i32x4.splat (i32.const 0x7f800000))
                            (f32x4.sub (f32x4.add (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                            (i32x4.ge_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
                          (v128.and (local.get $q) (i32x4.splat (i32.const 0x80000000))))
                        (i32x4.gt_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))) (else (v128.bitselect (i32x4.splat (i32.const 0x7fc00000)) (v128.and (i32x4.add (i32x4.add (local.get $q) (i32x4.splat (i32.const 0x7fff))) (v128.and (i32x4.shr_u (local.get $q) (i32.const 16)) (i32x4.splat (i32.const 1)))) (i32x4.splat (i32.const 0xffff0000))) (f32x4.ne (local.get $q) (local.get $q))))) (local.get $w)))
                    (v128.store align=4 (i32.add (local.get $acc) (local.get $i))
                      (f32x4.add (v128.load align=4 (i32.add (local.get $acc) (local.get $i))) (if (result v128) (i32.eq (local.get $step) (i32.const 2)) (then (v128.bitselect ;; $rnd_f16, inlined
                          (i32x4.splat (i32.const 0x7fc00000))
                          (v128.or
                            (v128.bitselect
                              (i32x4.splat (i32.const 0x7f800000))
                              (f32x4.sub (f32x4.add (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                              (i32x4.ge_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
                            (v128.and (local.get $q) (i32x4.splat (i32.const 0x80000000))))
                          (i32x4.gt_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))) (else (v128.bitselect (i32x4.splat (i32.const 0x7fc00000)) (v128.and (i32x4.add (i32x4.add (local.get $q) (i32x4.splat (i32.const 0x7fff))) (v128.and (i32x4.shr_u (local.get $q) (i32.const 16)) (i32x4.splat (i32.const 1)))) (i32x4.splat (i32.const 0xffff0000))) (f32x4.ne (local.get $q) (local.get $q)))))))
                    (local.set $i (i32.add (local.get $i) (i32.const 16)))
                    (br $next))))
              (else
                (block $done
                  (loop $next
                    (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                    (v128.store align=4 (i32.add (local.get $acc) (local.get $i))
                      (f32x4.add (v128.load align=4 (i32.add (local.get $acc) (local.get $i)))
                        (f32x4.mul (f32x4.div (v128.load align=4 (i32.add (local.get $x) (local.get $i))) (local.get $d)) (local.get $w))))
                    (local.set $i (i32.add (local.get $i) (i32.const 16)))
                    (br $next)))))
            (local.set $m (i32.add (local.get $m) (i32.const 1)))
            (br $models)))
        (if (local.get $step) (then (call $rnd_tile (local.get $acc) (local.get $n) (local.get $step))))
        (call $tile_done (local.get $out) (local.get $t) (local.get $n) (local.get $bf_out) (local.get $scratch))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; utan: multislerp's last pass. Inputs 0..count-1 are the task vectors v_j, input count the mean,
  ;; input count + 1 the base when $has_base. dir = f(mean / $mnorm); tangent = Σ_j
  ;; f(f(f(v_j / d_j) − f(dot_j · dir)) · w_j) from +0 in order; out = f(f(f(dir · cos) + f(tangent ·
  ;; sinc)) · $avg), then f(out + base). d, w and dot are `count` f32 at $params, $params + 64 and
  ;; $params + 128; cos and sinc f32 at $params + 192 and + 196.
  (func (export "utan")
    (param $in i32) (param $seg i32) (param $count i32) (param $params i32)
    (param $start i32) (param $end i32) (param $out i32) (param $bf_in i32) (param $bf_out i32)
    (param $mnorm f32) (param $avg f32) (param $has_base i32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $m i32) (local $x i32) (local $po i32) (local $i i32) (local $stop i32)
    (local $dir i32) (local $acc i32)
    (local $d v128) (local $w v128) (local $dot v128) (local $mn v128) (local $av v128)
    (local.set $mn (f32x4.splat (local.get $mnorm)))
    (local.set $av (f32x4.splat (local.get $avg)))
    (local.set $dir (i32.add (local.get $scratch) (i32.mul (i32.const 3) (global.get $tile_bytes))))
    (local.set $acc (i32.add (local.get $scratch) (i32.mul (i32.const 4) (global.get $tile_bytes))))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (select (global.get $tile) (i32.sub (local.get $end) (local.get $t))
                              (i32.gt_u (i32.sub (local.get $end) (local.get $t)) (global.get $tile))))
        (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
        (local.set $x (call $tile_in (local.get $in) (local.get $seg) (local.get $count) (local.get $t) (local.get $n)
                                     (local.get $bf_in) (local.get $scratch) (i32.const 0)))
        (local.set $i (i32.const 0))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
            (v128.store align=4 (i32.add (local.get $dir) (local.get $i))
              (f32x4.div (v128.load align=4 (i32.add (local.get $x) (local.get $i))) (local.get $mn)))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $next)))
        (memory.fill (local.get $acc) (i32.const 0) (local.get $stop))
        (local.set $m (i32.const 0))
        (block $models_done
          (loop $models
            (br_if $models_done (i32.ge_u (local.get $m) (local.get $count)))
            (local.set $x (call $tile_in (local.get $in) (local.get $seg) (local.get $m) (local.get $t) (local.get $n)
                                         (local.get $bf_in) (local.get $scratch) (i32.const 0)))
            (local.set $d (f32x4.splat (f32.load (i32.add (local.get $params) (i32.shl (local.get $m) (i32.const 2))))))
            (local.set $w (f32x4.splat (f32.load offset=64 (i32.add (local.get $params) (i32.shl (local.get $m) (i32.const 2))))))
            (local.set $dot (f32x4.splat (f32.load offset=128 (i32.add (local.get $params) (i32.shl (local.get $m) (i32.const 2))))))
            (local.set $i (i32.const 0))
            (block $done
              (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                (v128.store align=4 (i32.add (local.get $acc) (local.get $i))
                  (f32x4.add (v128.load align=4 (i32.add (local.get $acc) (local.get $i)))
                    (f32x4.mul
                      (f32x4.sub
                        (f32x4.div (v128.load align=4 (i32.add (local.get $x) (local.get $i))) (local.get $d))
                        (f32x4.mul (local.get $dot) (v128.load align=4 (i32.add (local.get $dir) (local.get $i)))))
                      (local.get $w))))
                (local.set $i (i32.add (local.get $i) (i32.const 16)))
                (br $next)))
            (local.set $m (i32.add (local.get $m) (i32.const 1)))
            (br $models)))
        (local.set $po (call $tile_out (local.get $out) (local.get $t) (local.get $bf_out) (local.get $scratch)))
        (local.set $i (i32.const 0))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
            (v128.store align=4 (i32.add (local.get $po) (local.get $i))
              (f32x4.mul
                (f32x4.add
                  (f32x4.mul (v128.load align=4 (i32.add (local.get $dir) (local.get $i))) (v128.load32_splat (i32.add (local.get $params) (i32.const 192))))
                  (f32x4.mul (v128.load align=4 (i32.add (local.get $acc) (local.get $i))) (v128.load32_splat (i32.add (local.get $params) (i32.const 196)))))
                (local.get $av)))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $next)))
        (if (local.get $has_base)
          (then
            (local.set $x (call $tile_in (local.get $in) (local.get $seg) (i32.add (local.get $count) (i32.const 1)) (local.get $t) (local.get $n)
                                         (local.get $bf_in) (local.get $scratch) (i32.const 0)))
            (local.set $i (i32.const 0))
            (block $done
              (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                (v128.store align=4 (i32.add (local.get $po) (local.get $i))
                  (f32x4.add (v128.load align=4 (i32.add (local.get $po) (local.get $i))) (v128.load align=4 (i32.add (local.get $x) (local.get $i)))))
                (local.set $i (i32.add (local.get $i) (i32.const 16)))
                (br $next)))))
        (call $tile_done (local.get $out) (local.get $t) (local.get $n) (local.get $bf_out) (local.get $scratch))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; umix: karcher's merge pass. out = f(scale · Σ_m c_m · f(x_m / d_m)), the products, the sum
  ;; (from +0, in input order) and the scaling in f64, one rounding to f32 at the end. The
  ;; coefficients c are `count` f64 at $params, the divisors d `count` f32 at $params + 128. The f64
  ;; sums are scratch tiles 3 and 4.
  (func (export "umix")
    (param $in i32) (param $seg i32) (param $count i32) (param $params i32)
    (param $start i32) (param $end i32) (param $out i32) (param $bf_in i32) (param $bf_out i32)
    (param $scale f64) (param $scratch i32)
    (local $t i32) (local $n i32) (local $m i32) (local $x i32) (local $po i32) (local $i i32) (local $stop i32)
    (local $acc i32) (local $a i32)
    (local $d v128) (local $c v128) (local $u v128) (local $s v128)
    (local.set $s (f64x2.splat (local.get $scale)))
    (local.set $acc (i32.add (local.get $scratch) (i32.mul (i32.const 3) (global.get $tile_bytes))))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (select (global.get $tile) (i32.sub (local.get $end) (local.get $t))
                              (i32.gt_u (i32.sub (local.get $end) (local.get $t)) (global.get $tile))))
        (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
        (memory.fill (local.get $acc) (i32.const 0) (i32.shl (local.get $stop) (i32.const 1)))
        (local.set $m (i32.const 0))
        (block $models_done
          (loop $models
            (br_if $models_done (i32.ge_u (local.get $m) (local.get $count)))
            (local.set $x (call $tile_in (local.get $in) (local.get $seg) (local.get $m) (local.get $t) (local.get $n)
                                         (local.get $bf_in) (local.get $scratch) (i32.const 0)))
            (local.set $c (f64x2.splat (f64.load (i32.add (local.get $params) (i32.shl (local.get $m) (i32.const 3))))))
            (local.set $d (f32x4.splat (f32.load offset=128 (i32.add (local.get $params) (i32.shl (local.get $m) (i32.const 2))))))
            (local.set $i (i32.const 0))
            (block $done
              (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                (local.set $u (f32x4.div (v128.load align=4 (i32.add (local.get $x) (local.get $i))) (local.get $d)))
                (local.set $a (i32.add (local.get $acc) (i32.shl (local.get $i) (i32.const 1))))
                (v128.store align=8 (local.get $a)
                  (f64x2.add (v128.load align=8 (local.get $a)) (f64x2.mul (local.get $c) (f64x2.promote_low_f32x4 (local.get $u)))))
                (v128.store offset=16 align=8 (local.get $a)
                  (f64x2.add (v128.load offset=16 align=8 (local.get $a))
                    (f64x2.mul (local.get $c) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $u) (local.get $u))))))
                (local.set $i (i32.add (local.get $i) (i32.const 16)))
                (br $next)))
            (local.set $m (i32.add (local.get $m) (i32.const 1)))
            (br $models)))
        (local.set $po (call $tile_out (local.get $out) (local.get $t) (local.get $bf_out) (local.get $scratch)))
        (local.set $i (i32.const 0))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
            (local.set $a (i32.add (local.get $acc) (i32.shl (local.get $i) (i32.const 1))))
            (v128.store align=4 (i32.add (local.get $po) (local.get $i))
              (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
                (f32x4.demote_f64x2_zero (f64x2.mul (local.get $s) (v128.load align=8 (local.get $a))))
                (f32x4.demote_f64x2_zero (f64x2.mul (local.get $s) (v128.load offset=16 align=8 (local.get $a))))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $next)))
        (call $tile_done (local.get $out) (local.get $t) (local.get $n) (local.get $bf_out) (local.get $scratch))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; dvar: sce's variance of the task vectors, as torch.var computes it. Input 0 is the base b, inputs
  ;; 1..count the models: δ_m = r(x_m − b) ($mode: 0 f32, 1 bf16, 2 f16), then Welford's update in
  ;; f64 for m = 1..count (d = δ_m − mean, mean += d / m, m2 += d·(δ_m − mean)), out = r(f(m2 /
  ;; count)). Scratch tile 3 holds δ_m, tiles 4–5 the means and 6–7 the m2s (f64).
  (func (export "dvar")
    (param $in i32) (param $seg i32) (param $count i32)
    (param $start i32) (param $end i32) (param $out i32) (param $bf_in i32) (param $bf_out i32) (param $mode i32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $m i32) (local $x i32) (local $b i32) (local $po i32) (local $i i32) (local $stop i32)
    (local $delta i32) (local $mean i32) (local $m2 i32) (local $at i32) (local $k v128)
    (local.set $delta (i32.add (local.get $scratch) (i32.mul (i32.const 3) (global.get $tile_bytes))))
    (local.set $mean (i32.add (local.get $scratch) (i32.mul (i32.const 4) (global.get $tile_bytes))))
    (local.set $m2 (i32.add (local.get $scratch) (i32.mul (i32.const 6) (global.get $tile_bytes))))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (select (global.get $tile) (i32.sub (local.get $end) (local.get $t))
                              (i32.gt_u (i32.sub (local.get $end) (local.get $t)) (global.get $tile))))
        (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
        (local.set $b (call $tile_in (local.get $in) (local.get $seg) (i32.const 0) (local.get $t) (local.get $n)
                                     (local.get $bf_in) (local.get $scratch) (i32.const 0)))
        (memory.fill (local.get $mean) (i32.const 0) (i32.shl (local.get $stop) (i32.const 1)))
        (memory.fill (local.get $m2) (i32.const 0) (i32.shl (local.get $stop) (i32.const 1)))
        (local.set $m (i32.const 1))
        (block $models_done
          (loop $models
            (br_if $models_done (i32.gt_u (local.get $m) (local.get $count)))
            (local.set $x (call $tile_in (local.get $in) (local.get $seg) (local.get $m) (local.get $t) (local.get $n)
                                         (local.get $bf_in) (local.get $scratch) (i32.const 1)))
            (call $sub_tile (local.get $delta) (local.get $x) (local.get $b) (local.get $n))
            (if (local.get $mode) (then (call $rnd_tile (local.get $delta) (local.get $n) (local.get $mode))))
            (local.set $k (f64x2.splat (f64.convert_i32_u (local.get $m))))
            (local.set $i (i32.const 0))
            (block $done
              (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                (local.set $at (i32.shl (local.get $i) (i32.const 1)))
                (call $welford2
                  (f64x2.promote_low_f32x4 (v128.load64_zero align=4 (i32.add (local.get $delta) (local.get $i))))
                  (i32.add (local.get $mean) (local.get $at)) (i32.add (local.get $m2) (local.get $at)) (local.get $k))
                (local.set $i (i32.add (local.get $i) (i32.const 8)))
                (br $next)))
            (local.set $m (i32.add (local.get $m) (i32.const 1)))
            (br $models)))
        (local.set $po (call $tile_out (local.get $out) (local.get $t) (local.get $bf_out) (local.get $scratch)))
        (local.set $k (f64x2.splat (f64.convert_i32_u (local.get $count))))
        (local.set $i (i32.const 0))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
            (local.set $at (i32.add (local.get $m2) (i32.shl (local.get $i) (i32.const 1))))
            (v128.store align=4 (i32.add (local.get $po) (local.get $i))
              (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
                (f32x4.demote_f64x2_zero (f64x2.div (v128.load align=8 (local.get $at)) (local.get $k)))
                (f32x4.demote_f64x2_zero (f64x2.div (v128.load offset=16 align=8 (local.get $at)) (local.get $k)))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $next)))
        (if (local.get $mode) (then (call $rnd_tile (local.get $po) (local.get $n) (local.get $mode))))
        (call $tile_done (local.get $out) (local.get $t) (local.get $n) (local.get $bf_out) (local.get $scratch))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; One Welford step for two elements: d = δ − mean, mean += d / $k, m2 += d·(δ − mean) (f64).
  (func $welford2 (param $x v128) (param $pmean i32) (param $pm2 i32) (param $k v128)
    (local $d v128) (local $mean v128)
    (local.set $d (f64x2.sub (local.get $x) (v128.load align=8 (local.get $pmean))))
    (local.set $mean (f64x2.add (v128.load align=8 (local.get $pmean)) (f64x2.div (local.get $d) (local.get $k))))
    (v128.store align=8 (local.get $pmean) (local.get $mean))
    (v128.store align=8 (local.get $pm2)
      (f64x2.add (v128.load align=8 (local.get $pm2)) (f64x2.mul (local.get $d) (f64x2.sub (local.get $x) (local.get $mean))))))

  ;; ---- the task-vector family (compute/reference.ts), a tile of up to 1024 elements at a time ----
  ;;
  ;; Every step is one tight loop over a tile of f32 in the thread's scratch: δ_j = x_j − base, its
  ;; mask, its scale and weight, the sign election, the sums, the result; with bf16 steps each is
  ;; followed by a pass that rounds the tile to bf16 ($rnd_tile). A call per tile costs nothing; a
  ;; call per vector would (V8 does not inline WebAssembly calls).
  ;;
  ;; Scratch tiles (4 KiB each): 0 the base widened, 1 a model widened, 2 a bf16 output before
  ;; narrowing, 3 mixed (or a reduction's δ), 4 the divisors (or |δ|), 5 the vote, 6..21 δ_j.
  ;;
  ;; The per-model table at $params (compute/wasm-backend.ts writes it): weights f32 +0, scales f32
  ;; +64, DARE keys +128 and thresholds +192, mask kinds +256 (0 all, 1 DARE's hash, 2 magnitude
  ;; thresholds, 3 magnitude thresholds with their ties' bytes in the segment at +128, 4 + k byte
  ;; mask segment k), magnitude keep bits +320 and skip bits +384, and the tensor indices where their
  ;; ties stop being kept (skipped): i64 at +448 and +576.

  ;; Rounds $n f32 at $p to bf16 ($mode 1) or f16 ($mode 2) and back, in place, as torch rounds
  ;; (nearest even; every NaN 0x7fc00000).
  (func $rnd_tile (param $p i32) (param $n i32) (param $mode i32)
    (local $end i32) (local $x v128)
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (if (i32.eq (local.get $mode) (i32.const 2))
      (then
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
            (local.set $x (v128.load (local.get $p)))
            (v128.store (local.get $p)
              (v128.bitselect ;; $rnd_f16, inlined
                (i32x4.splat (i32.const 0x7fc00000))
                (v128.or
                  (v128.bitselect
                    (i32x4.splat (i32.const 0x7f800000))
                    (f32x4.sub (f32x4.add (v128.and (local.get $x) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $x) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $x) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                    (i32x4.ge_u (v128.and (local.get $x) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
                  (v128.and (local.get $x) (i32x4.splat (i32.const 0x80000000))))
                (i32x4.gt_u (v128.and (local.get $x) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000)))))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (br $next)))
        (return)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $x (v128.load (local.get $p)))
        (v128.store (local.get $p)
          (v128.bitselect
            (i32x4.splat (i32.const 0x7fc00000))
            (v128.and
              (i32x4.add (i32x4.add (local.get $x) (i32x4.splat (i32.const 0x7fff)))
                         (v128.and (i32x4.shr_u (local.get $x) (i32.const 16)) (i32x4.splat (i32.const 1))))
              (i32x4.splat (i32.const 0xffff0000)))
            (f32x4.ne (local.get $x) (local.get $x))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next))))

  ;; f32 lanes rounded to f16 and back, as torch's c10::Half conversion: nearest even, subnormals
  ;; kept, overflow to ±∞; every NaN 0x7fc00000, as the bf16 steps give it (torch keeps an f16 NaN's
  ;; sign; Alloy's kernels do not). |x| + C − C with C = 2^(e + 13), e the exponent of |x| but at
  ;; least −14: the sum's ulp is 2^(e − 10), f16's for that exponent (2^-24 below 2^-14), so f32's
  ;; own rounding of the sum is f16's. The kernels inline this where they round a vector at a time.
  (func $rnd_f16 (param $x v128) (result v128)
    (local $a v128) (local $c v128)
    (local.set $a (v128.and (local.get $x) (i32x4.splat (i32.const 0x7fffffff))))
    (local.set $c
      (i32x4.add (i32x4.max_u (v128.and (local.get $x) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000)))
                 (i32x4.splat (i32.const 0x06800000))))
    (v128.bitselect
      (i32x4.splat (i32.const 0x7fc00000))
      (v128.or
        (v128.bitselect
          (i32x4.splat (i32.const 0x7f800000))
          (f32x4.sub (f32x4.add (local.get $a) (local.get $c)) (local.get $c))
          (i32x4.ge_u (local.get $a) (i32x4.splat (i32.const 0x477ff000))))
        (v128.and (local.get $x) (i32x4.splat (i32.const 0x80000000))))
      (i32x4.gt_u (local.get $a) (i32x4.splat (i32.const 0x7f800000)))))

  ;; $d = $a − $b, $n f32.
  (func $sub_tile (param $d i32) (param $a i32) (param $b i32) (param $n i32)
    (local $i i32) (local $stop i32)
    (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
        (v128.store (i32.add (local.get $d) (local.get $i))
          (f32x4.sub (v128.load (i32.add (local.get $a) (local.get $i))) (v128.load (i32.add (local.get $b) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; $d = $a + $b, $n f32.
  (func $add_tile (param $d i32) (param $a i32) (param $b i32) (param $n i32)
    (local $i i32) (local $stop i32)
    (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
        (v128.store (i32.add (local.get $d) (local.get $i))
          (f32x4.add (v128.load (i32.add (local.get $a) (local.get $i))) (v128.load (i32.add (local.get $b) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; $p *= $s, $n f32.
  (func $mul_tile (param $p i32) (param $n i32) (param $s f32)
    (local $end i32) (local $k v128)
    (local.set $k (f32x4.splat (local.get $s)))
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (v128.store (local.get $p) (f32x4.mul (v128.load (local.get $p)) (local.get $k)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next))))

  ;; $p /= $q (a tile) or, with $q = 0, /= $s.
  (func $div_tile (param $p i32) (param $q i32) (param $n i32) (param $s f32)
    (local $i i32) (local $stop i32) (local $k v128)
    (local.set $k (f32x4.splat (local.get $s)))
    (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
    (if (local.get $q)
      (then
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
            (v128.store (i32.add (local.get $p) (local.get $i))
              (f32x4.div (v128.load (i32.add (local.get $p) (local.get $i))) (v128.load (i32.add (local.get $q) (local.get $i)))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $next))))
      (else
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
            (v128.store (i32.add (local.get $p) (local.get $i))
              (f32x4.div (v128.load (i32.add (local.get $p) (local.get $i))) (local.get $k)))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $next))))))

  ;; TIES's disjoint mean, one model's turn: where δ_j has the sign the vote elected (≥ 0 is +;
  ;; a zero agrees with neither), mixed += δ_j and div += w_j.
  (func $agree_tile (param $mixed i32) (param $div i32) (param $d i32) (param $vote i32) (param $n i32) (param $w f32)
    (local $i i32) (local $stop i32) (local $x v128) (local $agrees v128) (local $wv v128) (local $zero v128)
    (local.set $wv (f32x4.splat (local.get $w)))
    (local.set $zero (f32x4.splat (f32.const 0)))
    (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
        (local.set $x (v128.load (i32.add (local.get $d) (local.get $i))))
        (local.set $agrees
          (v128.bitselect (f32x4.gt (local.get $x) (local.get $zero))
                          (f32x4.lt (local.get $x) (local.get $zero))
                          (f32x4.ge (v128.load (i32.add (local.get $vote) (local.get $i))) (local.get $zero))))
        (v128.store (i32.add (local.get $mixed) (local.get $i))
          (f32x4.add (v128.load (i32.add (local.get $mixed) (local.get $i))) (v128.and (local.get $x) (local.get $agrees))))
        (v128.store (i32.add (local.get $div) (local.get $i))
          (f32x4.add (v128.load (i32.add (local.get $div) (local.get $i))) (v128.and (local.get $wv) (local.get $agrees))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; A divisor of 0 (no model agreed) becomes 1.
  (func $fix_div (param $p i32) (param $n i32)
    (local $end i32) (local $x v128)
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $x (v128.load (local.get $p)))
        (v128.store (local.get $p)
          (v128.bitselect (f32x4.splat (f32.const 1)) (local.get $x) (f32x4.eq (local.get $x) (f32x4.splat (f32.const 0)))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next))))

  ;; Replaces $n f32 at $p by the bits of their magnitudes, every NaN as 0x7fc00000: what the
  ;; magnitude ranks compare (methods/magnitude-select.ts absBits).
  (func $abs_bits_tile (param $p i32) (param $n i32)
    (local $end i32) (local $a v128)
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $a (v128.and (v128.load (local.get $p)) (i32x4.splat (i32.const 0x7fffffff))))
        (v128.store (local.get $p)
          (v128.bitselect (i32x4.splat (i32.const 0x7fc00000)) (local.get $a) (i32x4.gt_s (local.get $a) (i32x4.splat (i32.const 0x7f800000)))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next))))

  ;; DARE: keeps element e (window index $e0 + lane) where the counter hash of (key, tensor index)
  ;; is below the threshold (methods/random-mask.ts uniformAt < density); zeroes the others.
  (func $mask_random (param $p i32) (param $n i32) (param $e0 i32) (param $idx_lo i32) (param $idx_hi i32) (param $key i32) (param $thr i32)
    (local $i i32) (local $stop i32) (local $e v128) (local $lo v128) (local $z v128)
    (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
        (local.set $e (i32x4.add (i32x4.splat (i32.add (local.get $e0) (i32.shr_u (local.get $i) (i32.const 2)))) (v128.const i32x4 0 1 2 3)))
        (local.set $lo (i32x4.add (i32x4.splat (local.get $idx_lo)) (local.get $e)))
        (local.set $z
          (v128.xor
            (v128.xor (i32x4.splat (local.get $key)) (i32x4.mul (local.get $lo) (i32x4.splat (i32.const 0x9e3779b9))))
            ;; the index's high word: idx_hi, plus 1 where the low word wrapped
            (i32x4.sub (i32x4.splat (local.get $idx_hi)) (i32x4.lt_u (local.get $lo) (local.get $e)))))
        (local.set $z (i32x4.mul (v128.xor (local.get $z) (i32x4.shr_u (local.get $z) (i32.const 16))) (i32x4.splat (i32.const 0x85ebca6b))))
        (local.set $z (i32x4.mul (v128.xor (local.get $z) (i32x4.shr_u (local.get $z) (i32.const 13))) (i32x4.splat (i32.const 0xc2b2ae35))))
        (local.set $z (v128.xor (local.get $z) (i32x4.shr_u (local.get $z) (i32.const 16))))
        (v128.store (i32.add (local.get $p) (local.get $i))
          (v128.and (v128.load (i32.add (local.get $p) (local.get $i))) (i32x4.lt_u (local.get $z) (i32x4.splat (local.get $thr)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; TIES/breadcrumbs: keeps δ where |δ|'s bits are above $u, or equal to it before window index
  ;; $cu, unless they are above $s, or equal to it before $cs (the outliers breadcrumbs drops; $s
  ;; is 0x7fffffff when there are none).
  (func $mask_mag (param $p i32) (param $n i32) (param $e0 i32) (param $u i32) (param $cu i32) (param $s i32) (param $cs i32)
    (local $i i32) (local $stop i32) (local $x v128) (local $bits v128) (local $e v128)
    (local $uv v128) (local $cuv v128) (local $sv v128) (local $csv v128)
    (local.set $uv (i32x4.splat (local.get $u)))
    (local.set $cuv (i32x4.splat (local.get $cu)))
    (local.set $sv (i32x4.splat (local.get $s)))
    (local.set $csv (i32x4.splat (local.get $cs)))
    (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
        (local.set $x (v128.load (i32.add (local.get $p) (local.get $i))))
        (local.set $bits (v128.and (local.get $x) (i32x4.splat (i32.const 0x7fffffff))))
        (local.set $bits (v128.bitselect (i32x4.splat (i32.const 0x7fc00000)) (local.get $bits) (i32x4.gt_s (local.get $bits) (i32x4.splat (i32.const 0x7f800000)))))
        (local.set $e (i32x4.add (i32x4.splat (i32.add (local.get $e0) (i32.shr_u (local.get $i) (i32.const 2)))) (v128.const i32x4 0 1 2 3)))
        (v128.store (i32.add (local.get $p) (local.get $i))
          (v128.and (local.get $x)
            (v128.andnot
              (v128.or (i32x4.gt_s (local.get $bits) (local.get $uv))
                       (v128.and (i32x4.eq (local.get $bits) (local.get $uv)) (i32x4.lt_s (local.get $e) (local.get $cuv))))
              (v128.or (i32x4.gt_s (local.get $bits) (local.get $sv))
                       (v128.and (i32x4.eq (local.get $bits) (local.get $sv)) (i32x4.lt_s (local.get $e) (local.get $csv)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; TIES/breadcrumbs with torch's order among ties: keeps δ where |δ|'s bits are above $u and below
  ;; $s, or where the byte at $m (one per element, 0 but at bits $u or $s) is not 0.
  (func $mask_mag_ties (param $p i32) (param $n i32) (param $u i32) (param $s i32) (param $m i32)
    (local $i i32) (local $stop i32) (local $x v128) (local $bits v128) (local $uv v128) (local $sv v128)
    (local.set $uv (i32x4.splat (local.get $u)))
    (local.set $sv (i32x4.splat (local.get $s)))
    (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
        (local.set $x (v128.load (i32.add (local.get $p) (local.get $i))))
        (local.set $bits (v128.and (local.get $x) (i32x4.splat (i32.const 0x7fffffff))))
        (local.set $bits (v128.bitselect (i32x4.splat (i32.const 0x7fc00000)) (local.get $bits) (i32x4.gt_s (local.get $bits) (i32x4.splat (i32.const 0x7f800000)))))
        (v128.store (i32.add (local.get $p) (local.get $i))
          (v128.and (local.get $x)
            (v128.or
              (v128.and (i32x4.gt_s (local.get $bits) (local.get $uv)) (i32x4.lt_s (local.get $bits) (local.get $sv)))
              (i32x4.ne
                (i32x4.extend_low_i16x8_u (i16x8.extend_low_i8x16_u
                  (v128.load32_zero align=1 (i32.add (local.get $m) (i32.shr_u (local.get $i) (i32.const 2))))))
                (i32x4.splat (i32.const 0))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; Explicit masks (DELLA's): keeps δ where the mask byte at $m (one per element) is not 0.
  (func $mask_bytes (param $p i32) (param $n i32) (param $m i32)
    (local $i i32) (local $stop i32)
    (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
        (v128.store (i32.add (local.get $p) (local.get $i))
          (v128.and (v128.load (i32.add (local.get $p) (local.get $i)))
            (i32x4.ne
              (i32x4.extend_low_i16x8_u (i16x8.extend_low_i8x16_u
                (v128.load32_zero align=1 (i32.add (local.get $m) (i32.shr_u (local.get $i) (i32.const 2))))))
              (i32x4.splat (i32.const 0)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; A tensor index (i64) as an index into the window that starts at tensor index $idx, clamped to
  ;; [0, 2^31 − 1]: "before tensor index c" is "before window index $rel_cut(c)".
  (func $rel_cut (param $cut i64) (param $idx_lo i32) (param $idx_hi i32) (result i32)
    (local $d i64)
    (local.set $d (i64.sub (local.get $cut)
      (i64.or (i64.shl (i64.extend_i32_u (local.get $idx_hi)) (i64.const 32)) (i64.extend_i32_u (local.get $idx_lo)))))
    (if (result i32) (i64.le_s (local.get $d) (i64.const 0))
      (then (i32.const 0))
      (else (select (i32.const 0x7fffffff) (i32.wrap_i64 (local.get $d)) (i64.ge_s (local.get $d) (i64.const 0x7fffffff))))))

  ;; δ_j = r(x_j − base) over the tile at element $t of the window, into $pd, then masked as model
  ;; j's table entry says where $masked. $pb: the base's f32 tile.
  (func $delta_tile (param $in i32) (param $seg i32) (param $count i32) (param $params i32) (param $j i32)
                    (param $t i32) (param $n i32) (param $pb i32) (param $pd i32) (param $bf_in i32) (param $bf i32)
                    (param $idx_lo i32) (param $idx_hi i32) (param $scratch i32) (param $masked i32)
    (call $sub_tile (local.get $pd)
      (call $tile_in (local.get $in) (local.get $seg) (i32.add (local.get $j) (i32.const 1)) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 1))
      (local.get $pb) (local.get $n))
    (if (local.get $bf) (then (call $rnd_tile (local.get $pd) (local.get $n) (local.get $bf))))
    (if (local.get $masked)
      (then (call $delta_mask (local.get $in) (local.get $seg) (local.get $count) (local.get $params) (local.get $j)
                              (local.get $t) (local.get $n) (local.get $pd) (local.get $idx_lo) (local.get $idx_hi)))))

  ;; Zeroes the δ_j at $pd (the tile at element $t of the window) that model j's mask drops.
  (func $delta_mask (param $in i32) (param $seg i32) (param $count i32) (param $params i32) (param $j i32)
                    (param $t i32) (param $n i32) (param $pd i32) (param $idx_lo i32) (param $idx_hi i32)
    (local $at i32) (local $kind i32)
    (local.set $at (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 2))))
    (local.set $kind (i32.load offset=256 (local.get $at)))
    (if (i32.eq (local.get $kind) (i32.const 1))
      (then (call $mask_random (local.get $pd) (local.get $n) (local.get $t) (local.get $idx_lo) (local.get $idx_hi)
                               (i32.load offset=128 (local.get $at)) (i32.load offset=192 (local.get $at)))))
    (if (i32.eq (local.get $kind) (i32.const 2))
      (then (call $mask_mag (local.get $pd) (local.get $n) (local.get $t)
              (i32.load offset=320 (local.get $at))
              (call $rel_cut (i64.load offset=448 (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 3)))) (local.get $idx_lo) (local.get $idx_hi))
              (i32.load offset=384 (local.get $at))
              (call $rel_cut (i64.load offset=576 (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 3)))) (local.get $idx_lo) (local.get $idx_hi)))))
    (if (i32.eq (local.get $kind) (i32.const 3))
      (then (call $mask_mag_ties (local.get $pd) (local.get $n)
              (i32.load offset=320 (local.get $at))
              (i32.load offset=384 (local.get $at))
              (i32.add (i32.load (i32.add (local.get $in) (i32.shl (i32.add (local.get $count) (i32.add (i32.load offset=128 (local.get $at)) (i32.const 1))) (i32.const 2))))
                       (local.get $t)))))
    (if (i32.ge_u (local.get $kind) (i32.const 4))
      (then (call $mask_bytes (local.get $pd) (local.get $n)
              (i32.add (i32.load (i32.add (local.get $in) (i32.shl (i32.add (local.get $count) (i32.sub (local.get $kind) (i32.const 3))) (i32.const 2))))
                       (local.get $t))))))

  (func $tile_len (param $t i32) (param $end i32) (result i32)
    (select (global.get $tile) (i32.sub (local.get $end) (local.get $t))
            (i32.gt_u (i32.sub (local.get $end) (local.get $t)) (global.get $tile))))

  (func $scratch_tile (param $scratch i32) (param $k i32) (result i32)
    (i32.add (local.get $scratch) (i32.mul (local.get $k) (global.get $tile_bytes))))

  ;; task: input 0 is the base, inputs 1..count the models; masks as the table says; $idx_lo/$idx_hi:
  ;; the index in the tensor of the window's element 0. $flags: 1 consensus, 2 normalize, 4 lambda,
  ;; 8 bf16 steps.
  (func (export "task")
    (param $in i32) (param $seg i32) (param $count i32) (param $params i32)
    (param $start i32) (param $end i32) (param $out i32) (param $bf_in i32) (param $bf_out i32)
    (param $idx_lo i32) (param $idx_hi i32) (param $flags i32) (param $divisor f32) (param $lambda f32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $j i32) (local $pb i32) (local $pd i32) (local $po i32) (local $at i32)
    (local $bf i32) (local $s f32) (local $mixed i32) (local $div i32) (local $vote i32) (local $bytes i32)
    (local.set $bf (i32.shr_u (i32.and (local.get $flags) (i32.const 24)) (i32.const 3)))
    (local.set $mixed (call $scratch_tile (local.get $scratch) (i32.const 3)))
    (local.set $div (call $scratch_tile (local.get $scratch) (i32.const 4)))
    (local.set $vote (call $scratch_tile (local.get $scratch) (i32.const 5)))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (call $tile_len (local.get $t) (local.get $end)))
        (local.set $bytes (i32.shl (local.get $n) (i32.const 2)))
        (local.set $pb (call $tile_in (local.get $in) (local.get $seg) (i32.const 0) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 0)))
        ;; d_j = r(r(kept δ_j · s_j) · w_j)
        (local.set $j (i32.const 0))
        (block $models_done
          (loop $models
            (br_if $models_done (i32.ge_u (local.get $j) (local.get $count)))
            (local.set $pd (call $scratch_tile (local.get $scratch) (i32.add (local.get $j) (i32.const 6))))
            (call $delta_tile (local.get $in) (local.get $seg) (local.get $count) (local.get $params) (local.get $j)
                              (local.get $t) (local.get $n) (local.get $pb) (local.get $pd) (local.get $bf_in) (local.get $bf)
                              (local.get $idx_lo) (local.get $idx_hi) (local.get $scratch) (i32.const 1))
            (local.set $at (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $s (f32.load offset=64 (local.get $at)))
            (if (f32.ne (local.get $s) (f32.const 1))
              (then
                (call $mul_tile (local.get $pd) (local.get $n) (local.get $s))
                (if (local.get $bf) (then (call $rnd_tile (local.get $pd) (local.get $n) (local.get $bf))))))
            (call $mul_tile (local.get $pd) (local.get $n) (f32.load (local.get $at)))
            (if (local.get $bf) (then (call $rnd_tile (local.get $pd) (local.get $n) (local.get $bf))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $models)))
        ;; mixed: Σ d_j, or with consensus Σ of the d_j that agree with the sign of Σ d_j
        (memory.fill (local.get $mixed) (i32.const 0) (local.get $bytes))
        (if (i32.and (local.get $flags) (i32.const 1))
          (then
            (memory.fill (local.get $vote) (i32.const 0) (local.get $bytes))
            (memory.fill (local.get $div) (i32.const 0) (local.get $bytes))
            (local.set $j (i32.const 0))
            (block $v_done
              (loop $v
                (br_if $v_done (i32.ge_u (local.get $j) (local.get $count)))
                (call $add_tile (local.get $vote) (local.get $vote) (call $scratch_tile (local.get $scratch) (i32.add (local.get $j) (i32.const 6))) (local.get $n))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $v)))
            (local.set $j (i32.const 0))
            (block $a_done
              (loop $a
                (br_if $a_done (i32.ge_u (local.get $j) (local.get $count)))
                (call $agree_tile (local.get $mixed) (local.get $div) (call $scratch_tile (local.get $scratch) (i32.add (local.get $j) (i32.const 6)))
                                  (local.get $vote) (local.get $n) (f32.load (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 2)))))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $a)))
            (if (local.get $bf) (then (call $rnd_tile (local.get $div) (local.get $n) (local.get $bf))))
            (call $fix_div (local.get $div) (local.get $n)))
          (else
            (local.set $j (i32.const 0))
            (block $s_done
              (loop $sum
                (br_if $s_done (i32.ge_u (local.get $j) (local.get $count)))
                (call $add_tile (local.get $mixed) (local.get $mixed) (call $scratch_tile (local.get $scratch) (i32.add (local.get $j) (i32.const 6))) (local.get $n))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $sum)))))
        (if (local.get $bf) (then (call $rnd_tile (local.get $mixed) (local.get $n) (local.get $bf))))
        (if (i32.and (local.get $flags) (i32.const 2))
          (then
            (call $div_tile (local.get $mixed) (select (local.get $div) (i32.const 0) (i32.and (local.get $flags) (i32.const 1))) (local.get $n) (local.get $divisor))
            (if (local.get $bf) (then (call $rnd_tile (local.get $mixed) (local.get $n) (local.get $bf))))))
        (if (i32.and (local.get $flags) (i32.const 4))
          (then
            (call $mul_tile (local.get $mixed) (local.get $n) (local.get $lambda))
            (if (local.get $bf) (then (call $rnd_tile (local.get $mixed) (local.get $n) (local.get $bf))))))
        ;; out = r(base + mixed)
        (local.set $po (call $tile_out (local.get $out) (local.get $t) (local.get $bf_out) (local.get $scratch)))
        (call $add_tile (local.get $po) (local.get $pb) (local.get $mixed) (local.get $n))
        (if (local.get $bf) (then (call $rnd_tile (local.get $po) (local.get $n) (local.get $bf))))
        (call $tile_done (local.get $out) (local.get $t) (local.get $n) (local.get $bf_out) (local.get $scratch))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; dhist: the magnitude ranks' radix histograms. Selection j (input j + 1) counts |r(x_j − base)|'s
  ;; bits (as $abs_bits_tile gives them): by their high 16 bits where its prefix (i32 at $params + 4j) is
  ;; −1, else by their low 16 bits among those whose high 16 bits are the prefix. Its 65,536 u32
  ;; counts follow the thread's scratch tiles ($scratch + 22 tiles + j · 2^18) and are added to.
  ;; A selection that is the same array as the one before it (sce counts its variances' high and low
  ;; bits in one pass) reuses that one's |δ| bits.
  (func (export "dhist")
    (param $in i32) (param $seg i32) (param $count i32) (param $params i32)
    (param $start i32) (param $end i32) (param $bf_in i32) (param $flags i32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $j i32) (local $pb i32) (local $pd i32) (local $h i32) (local $prefix i32)
    (local $i i32) (local $stop i32) (local $bits v128) (local $x i32) (local $at i32) (local $match v128) (local $list i32)
    (local.set $pd (call $scratch_tile (local.get $scratch) (i32.const 3)))
    (local.set $list (call $scratch_tile (local.get $scratch) (i32.const 2)))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (call $tile_len (local.get $t) (local.get $end)))
        (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
        (local.set $pb (call $tile_in (local.get $in) (local.get $seg) (i32.const 0) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 0)))
        (local.set $j (i32.const 0))
        (block $models_done
          (loop $models
            (br_if $models_done (i32.ge_u (local.get $j) (local.get $count)))
            (if (i32.or (i32.eqz (local.get $j))
                        (i32.ne (i32.load (i32.add (local.get $in) (i32.shl (i32.add (local.get $j) (i32.const 1)) (i32.const 2))))
                                (i32.load (i32.add (local.get $in) (i32.shl (local.get $j) (i32.const 2))))))
              (then
                (call $delta_tile (local.get $in) (local.get $seg) (local.get $count) (local.get $params) (local.get $j)
                                  (local.get $t) (local.get $n) (local.get $pb) (local.get $pd) (local.get $bf_in) (i32.shr_u (i32.and (local.get $flags) (i32.const 24)) (i32.const 3))
                                  (i32.const 0) (i32.const 0) (local.get $scratch) (i32.const 0))
                (call $abs_bits_tile (local.get $pd) (local.get $n))))
            (local.set $h (i32.add (i32.add (local.get $scratch) (i32.mul (i32.const 22) (global.get $tile_bytes))) (i32.shl (local.get $j) (i32.const 18))))
            (local.set $prefix (i32.load (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 2)))))
            (local.set $i (i32.const 0))
            (if (i32.lt_s (local.get $prefix) (i32.const 0))
              (then
                (block $done
                  (loop $next
                    (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                    (local.set $bits (i32x4.shr_u (v128.load (i32.add (local.get $pd) (local.get $i))) (i32.const 16)))
                    (local.set $at (i32.add (local.get $h) (i32.shl (i32x4.extract_lane 0 (local.get $bits)) (i32.const 2))))
                    (i32.store (local.get $at) (i32.add (i32.load (local.get $at)) (i32.const 1)))
                    (local.set $at (i32.add (local.get $h) (i32.shl (i32x4.extract_lane 1 (local.get $bits)) (i32.const 2))))
                    (i32.store (local.get $at) (i32.add (i32.load (local.get $at)) (i32.const 1)))
                    (local.set $at (i32.add (local.get $h) (i32.shl (i32x4.extract_lane 2 (local.get $bits)) (i32.const 2))))
                    (i32.store (local.get $at) (i32.add (i32.load (local.get $at)) (i32.const 1)))
                    (local.set $at (i32.add (local.get $h) (i32.shl (i32x4.extract_lane 3 (local.get $bits)) (i32.const 2))))
                    (i32.store (local.get $at) (i32.add (i32.load (local.get $at)) (i32.const 1)))
                    (local.set $i (i32.add (local.get $i) (i32.const 16)))
                    (br $next))))
              (else
                ;; The low 16 bits of those in the bucket listed first (in scratch tile 2, which dhist
                ;; has no output for), without a branch per element (a few in a hundred match: a
                ;; branch on each mispredicts), then counted.
                (local.set $at (local.get $list))
                (block $done
                  (loop $next
                    (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                    (local.set $bits (v128.load (i32.add (local.get $pd) (local.get $i))))
                    (local.set $match (v128.and (i32x4.eq (i32x4.shr_u (local.get $bits) (i32.const 16)) (i32x4.splat (local.get $prefix)))
                                                (i32x4.splat (i32.const 4))))
                    (local.set $bits (v128.and (local.get $bits) (i32x4.splat (i32.const 0xffff))))
                    (i32.store (local.get $at) (i32x4.extract_lane 0 (local.get $bits)))
                    (local.set $at (i32.add (local.get $at) (i32x4.extract_lane 0 (local.get $match))))
                    (i32.store (local.get $at) (i32x4.extract_lane 1 (local.get $bits)))
                    (local.set $at (i32.add (local.get $at) (i32x4.extract_lane 1 (local.get $match))))
                    (i32.store (local.get $at) (i32x4.extract_lane 2 (local.get $bits)))
                    (local.set $at (i32.add (local.get $at) (i32x4.extract_lane 2 (local.get $match))))
                    (i32.store (local.get $at) (i32x4.extract_lane 3 (local.get $bits)))
                    (local.set $at (i32.add (local.get $at) (i32x4.extract_lane 3 (local.get $match))))
                    (local.set $i (i32.add (local.get $i) (i32.const 16)))
                    (br $next)))
                (local.set $x (local.get $list))
                (block $counted
                  (loop $count
                    (br_if $counted (i32.ge_u (local.get $x) (local.get $at)))
                    (local.set $i (i32.add (local.get $h) (i32.shl (i32.load (local.get $x)) (i32.const 2))))
                    (i32.store (local.get $i) (i32.add (i32.load (local.get $i)) (i32.const 1)))
                    (local.set $x (i32.add (local.get $x) (i32.const 4)))
                    (br $count)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $models)))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; dfind, dsums and normsq follow one order per selection (model, input): a thread takes whole ones,
  ;; those whose bit is set in $models.
  ;; dfind: where the ties at a magnitude threshold stop being kept. For selection j: its bits
  ;; (i32 at $params + 4j) and the rank wanted among the elements whose |δ| has them (i32 at
  ;; $params + 64 + 4j). At $result + 8j: the count of such elements seen, up to the wanted one, and
  ;; its window index once seen (−1 until then; the host sets both before each window).
  (func (export "dfind")
    (param $in i32) (param $seg i32) (param $count i32) (param $params i32)
    (param $start i32) (param $end i32) (param $result i32) (param $bf_in i32) (param $flags i32) (param $models i32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $j i32) (local $pb i32) (local $pd i32) (local $r i32)
    (local $i i32) (local $stop i32) (local $tv v128) (local $seen i32) (local $want i32) (local $mask i32) (local $pop i32) (local $lane i32)
    (local.set $pd (call $scratch_tile (local.get $scratch) (i32.const 3)))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (call $tile_len (local.get $t) (local.get $end)))
        (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
        (local.set $pb (call $tile_in (local.get $in) (local.get $seg) (i32.const 0) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 0)))
        (local.set $j (i32.const 0))
        (block $models_done
          (loop $models
            (br_if $models_done (i32.ge_u (local.get $j) (local.get $count)))
            (block $skip
            (br_if $skip (i32.eqz (i32.and (local.get $models) (i32.shl (i32.const 1) (local.get $j)))))
            (local.set $r (i32.add (local.get $result) (i32.shl (local.get $j) (i32.const 3))))
            (if (i32.lt_s (i32.load offset=4 (local.get $r)) (i32.const 0))
              (then
                (call $delta_tile (local.get $in) (local.get $seg) (local.get $count) (local.get $params) (local.get $j)
                                  (local.get $t) (local.get $n) (local.get $pb) (local.get $pd) (local.get $bf_in) (i32.shr_u (i32.and (local.get $flags) (i32.const 24)) (i32.const 3))
                                  (i32.const 0) (i32.const 0) (local.get $scratch) (i32.const 0))
                (call $abs_bits_tile (local.get $pd) (local.get $n))
                (local.set $tv (i32x4.splat (i32.load (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 2))))))
                (local.set $want (i32.load offset=64 (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 2)))))
                (local.set $seen (i32.load (local.get $r)))
                (local.set $i (i32.const 0))
                (block $done
                  (loop $next
                    (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                    (local.set $mask (i32x4.bitmask (i32x4.eq (v128.load (i32.add (local.get $pd) (local.get $i))) (local.get $tv))))
                    (local.set $pop (i32.popcnt (local.get $mask)))
                    (if (i32.gt_s (i32.add (local.get $seen) (local.get $pop)) (local.get $want))
                      (then
                        ;; the wanted one is in these four: walk their lanes in order
                        (local.set $lane (i32.const 0))
                        (block $found
                          (loop $lanes
                            (if (i32.and (local.get $mask) (i32.shl (i32.const 1) (local.get $lane)))
                              (then
                                (br_if $found (i32.eq (local.get $seen) (local.get $want)))
                                (local.set $seen (i32.add (local.get $seen) (i32.const 1)))))
                            (local.set $lane (i32.add (local.get $lane) (i32.const 1)))
                            (br $lanes)))
                        (i32.store offset=4 (local.get $r)
                          (i32.add (i32.add (local.get $t) (i32.shr_u (local.get $i) (i32.const 2))) (local.get $lane)))
                        (local.set $seen (i32.add (local.get $seen) (i32.const 1)))
                        (br $done)))
                    (local.set $seen (i32.add (local.get $seen) (local.get $pop)))
                    (local.set $i (i32.add (local.get $i) (i32.const 16)))
                    (br $next)))
                (i32.store (local.get $r) (local.get $seen))))
            )
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $models)))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; dsums: mergekit's L1 rescale sums, in f64, element by element in index order (as
  ;; methods/task-arithmetic.ts adds them): for model j, Σ|δ_j| and Σ|kept δ_j| (masked as the task
  ;; table says), added to the two f64 at $sums + 16j.
  (func (export "dsums")
    (param $in i32) (param $seg i32) (param $count i32) (param $params i32)
    (param $start i32) (param $end i32) (param $sums i32) (param $bf_in i32) (param $flags i32)
    (param $idx_lo i32) (param $idx_hi i32) (param $models i32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $j i32) (local $pb i32) (local $pd i32) (local $pa i32) (local $at i32)
    (local $i i32) (local $stop i32) (local $all f64) (local $kept f64)
    (local.set $pd (call $scratch_tile (local.get $scratch) (i32.const 3)))
    (local.set $pa (call $scratch_tile (local.get $scratch) (i32.const 4)))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (call $tile_len (local.get $t) (local.get $end)))
        (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
        (local.set $pb (call $tile_in (local.get $in) (local.get $seg) (i32.const 0) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 0)))
        (local.set $j (i32.const 0))
        (block $models_done
          (loop $models
            (br_if $models_done (i32.ge_u (local.get $j) (local.get $count)))
            (block $skip
            (br_if $skip (i32.eqz (i32.and (local.get $models) (i32.shl (i32.const 1) (local.get $j)))))
            ;; |δ| before the mask into pa, the kept δ into pd
            (call $delta_tile (local.get $in) (local.get $seg) (local.get $count) (local.get $params) (local.get $j)
                              (local.get $t) (local.get $n) (local.get $pb) (local.get $pa) (local.get $bf_in) (i32.shr_u (i32.and (local.get $flags) (i32.const 24)) (i32.const 3))
                              (local.get $idx_lo) (local.get $idx_hi) (local.get $scratch) (i32.const 0))
            (memory.copy (local.get $pd) (local.get $pa) (local.get $stop))
            (call $delta_mask (local.get $in) (local.get $seg) (local.get $count) (local.get $params) (local.get $j)
                              (local.get $t) (local.get $n) (local.get $pd) (local.get $idx_lo) (local.get $idx_hi))
            (local.set $at (i32.add (local.get $sums) (i32.shl (local.get $j) (i32.const 4))))
            (local.set $all (f64.load (local.get $at)))
            (local.set $kept (f64.load offset=8 (local.get $at)))
            (local.set $i (i32.const 0))
            (block $done
              (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                (local.set $all (f64.add (local.get $all) (f64.promote_f32 (f32.abs (f32.load (i32.add (local.get $pa) (local.get $i)))))))
                (local.set $kept (f64.add (local.get $kept) (f64.promote_f32 (f32.abs (f32.load (i32.add (local.get $pd) (local.get $i)))))))
                (local.set $i (i32.add (local.get $i) (i32.const 4)))
                (br $next)))
            (f64.store (local.get $at) (local.get $all))
            (f64.store offset=8 (local.get $at) (local.get $kept))
            )
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $models)))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; ---- DELLA's per-row ranks (methods/sparsify.ts DellaSparsifier), a row of one model at a time ----
  ;;
  ;; drank: input 0 is the base, inputs 1..count the models, and entries count + 1 .. 2·count of the
  ;; table their keep masks (one byte per element, 1 = kept). The window is $rows rows of $n
  ;; elements; unit u of [$u0, $u1) is row u mod $rows of model u / $rows. Per model j at $params +
  ;; 4j: the hash key (i32), low (f32, +64) and span (f32, +128). For each unit: the row's |δ| bits
  ;; (absBits of δ = x − base, rounded to bf16 under flag 8) as keys; a stable LSD radix sort of its
  ;; positions by them, over the bits that differ within the row only (one to three digits of at
  ;; most 11 bits; a digit the whole row shares is skipped), so ties stay in index order; then the element of rank k is kept where the counter hash of its
  ;; tensor index is below f(low + f(f(k / (n − 1))·span)) (uniformAt < p, as $mask_random draws).
  ;; $idx_lo/$idx_hi: the tensor index of the window's element 0. $sort: the thread's own scratch,
  ;; the keys and two arrays of positions (4n bytes each, rounded up to 16), then 24 KiB of counts.

  ;; The keys of one row: absBits(r(x − b)) of $n elements of the model at $px and the base at $pb
  ;; (bf16 where $bf_in, else f32), r rounding to bf16 where $bf; every NaN 0x7fc00000. Nothing is
  ;; read past the row: the last n mod 4 go one at a time. Returns the bits in which keys differ
  ;; (the OR of all keys xor their AND).
  (func $row_keys (param $px i32) (param $pb i32) (param $keys i32) (param $n i32) (param $bf_in i32) (param $bf i32) (result i32)
    (local $i i32) (local $stop i32) (local $x v128) (local $b v128) (local $d v128) (local $bits i32)
    (local $vor v128) (local $vand v128) (local $or i32) (local $and i32)
    (local.set $vand (i32x4.splat (i32.const -1)))
    (local.set $stop (i32.and (local.get $n) (i32.const -4)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
        (if (local.get $bf_in)
          (then
            (local.set $x (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero align=2 (i32.add (local.get $px) (i32.shl (local.get $i) (i32.const 1))))) (i32.const 16)))
            (local.set $b (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero align=2 (i32.add (local.get $pb) (i32.shl (local.get $i) (i32.const 1))))) (i32.const 16))))
          (else
            (local.set $x (v128.load align=4 (i32.add (local.get $px) (i32.shl (local.get $i) (i32.const 2)))))
            (local.set $b (v128.load align=4 (i32.add (local.get $pb) (i32.shl (local.get $i) (i32.const 2)))))))
        (local.set $d (f32x4.sub (local.get $x) (local.get $b)))
        (if (i32.eq (local.get $bf) (i32.const 2))
          (then (local.set $d (v128.bitselect ;; $rnd_f16, inlined
              (i32x4.splat (i32.const 0x7fc00000))
              (v128.or
                (v128.bitselect
                  (i32x4.splat (i32.const 0x7f800000))
                  (f32x4.sub (f32x4.add (v128.and (local.get $d) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $d) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $d) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                  (i32x4.ge_u (v128.and (local.get $d) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
                (v128.and (local.get $d) (i32x4.splat (i32.const 0x80000000))))
              (i32x4.gt_u (v128.and (local.get $d) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))))
          (else
            (if (local.get $bf)
              (then
                (local.set $d
                  (v128.bitselect
                    (i32x4.splat (i32.const 0x7fc00000))
                    (v128.and
                      (i32x4.add (i32x4.add (local.get $d) (i32x4.splat (i32.const 0x7fff)))
                                 (v128.and (i32x4.shr_u (local.get $d) (i32.const 16)) (i32x4.splat (i32.const 1))))
                      (i32x4.splat (i32.const 0xffff0000)))
                    (f32x4.ne (local.get $d) (local.get $d))))))))
        (local.set $d (v128.and (local.get $d) (i32x4.splat (i32.const 0x7fffffff))))
        (local.set $d (v128.bitselect (i32x4.splat (i32.const 0x7fc00000)) (local.get $d) (i32x4.gt_s (local.get $d) (i32x4.splat (i32.const 0x7f800000)))))
        (v128.store align=4 (i32.add (local.get $keys) (i32.shl (local.get $i) (i32.const 2))) (local.get $d))
        (local.set $vor (v128.or (local.get $vor) (local.get $d)))
        (local.set $vand (v128.and (local.get $vand) (local.get $d)))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $next)))
    (local.set $or (i32.or (i32.or (i32x4.extract_lane 0 (local.get $vor)) (i32x4.extract_lane 1 (local.get $vor)))
                           (i32.or (i32x4.extract_lane 2 (local.get $vor)) (i32x4.extract_lane 3 (local.get $vor)))))
    (local.set $and (i32.and (i32.and (i32x4.extract_lane 0 (local.get $vand)) (i32x4.extract_lane 1 (local.get $vand)))
                             (i32.and (i32x4.extract_lane 2 (local.get $vand)) (i32x4.extract_lane 3 (local.get $vand)))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $bits
          (i32.reinterpret_f32
            (if (result f32) (local.get $bf_in)
              (then
                (f32.sub
                  (f32.reinterpret_i32 (i32.shl (i32.load16_u (i32.add (local.get $px) (i32.shl (local.get $i) (i32.const 1)))) (i32.const 16)))
                  (f32.reinterpret_i32 (i32.shl (i32.load16_u (i32.add (local.get $pb) (i32.shl (local.get $i) (i32.const 1)))) (i32.const 16)))))
              (else
                (f32.sub
                  (f32.load (i32.add (local.get $px) (i32.shl (local.get $i) (i32.const 2))))
                  (f32.load (i32.add (local.get $pb) (i32.shl (local.get $i) (i32.const 2)))))))))
        (if (i32.gt_u (i32.and (local.get $bits) (i32.const 0x7fffffff)) (i32.const 0x7f800000))
          (then (local.set $bits (i32.const 0x7fc00000)))
          (else
            (if (i32.eq (local.get $bf) (i32.const 2))
              (then (local.set $bits (i32x4.extract_lane 0 (call $rnd_f16 (i32x4.splat (local.get $bits))))))
              (else
                (if (local.get $bf)
                  (then
                    (local.set $bits
                      (i32.and
                        (i32.add (i32.add (local.get $bits) (i32.const 0x7fff)) (i32.and (i32.shr_u (local.get $bits) (i32.const 16)) (i32.const 1)))
                        (i32.const 0xffff0000)))))))))
        (local.set $bits (i32.and (local.get $bits) (i32.const 0x7fffffff)))
        (i32.store (i32.add (local.get $keys) (i32.shl (local.get $i) (i32.const 2))) (local.get $bits))
        (local.set $or (i32.or (local.get $or) (local.get $bits)))
        (local.set $and (i32.and (local.get $and) (local.get $bits)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.xor (local.get $or) (local.get $and)))

  ;; One stable counting-sort pass: the positions at $src (0, 1, …, n − 1 when $src is 0), taken in
  ;; order, to $dst by their keys' digit (key >> $shift) & $mask. $h holds the $bins counts of that
  ;; digit; they become the running offsets here.
  (func $radix_pass (param $keys i32) (param $src i32) (param $dst i32) (param $h i32) (param $bins i32)
                    (param $shift i32) (param $mask i32) (param $n i32)
    (local $b i32) (local $sum i32) (local $c i32) (local $t i32) (local $i i32) (local $at i32) (local $p i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $b) (local.get $bins)))
        (local.set $at (i32.add (local.get $h) (i32.shl (local.get $b) (i32.const 2))))
        (local.set $c (i32.load (local.get $at)))
        (i32.store (local.get $at) (local.get $sum))
        (local.set $sum (i32.add (local.get $sum) (local.get $c)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $next)))
    (if (i32.eqz (local.get $src))
      (then
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
            (local.set $at (i32.add (local.get $h)
              (i32.shl (i32.and (i32.shr_u (i32.load (i32.add (local.get $keys) (i32.shl (local.get $i) (i32.const 2)))) (local.get $shift)) (local.get $mask)) (i32.const 2))))
            (local.set $p (i32.load (local.get $at)))
            (i32.store (local.get $at) (i32.add (local.get $p) (i32.const 1)))
            (i32.store (i32.add (local.get $dst) (i32.shl (local.get $p) (i32.const 2))) (local.get $i))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $next))))
      (else
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $t) (local.get $n)))
            (local.set $i (i32.load (i32.add (local.get $src) (i32.shl (local.get $t) (i32.const 2)))))
            (local.set $at (i32.add (local.get $h)
              (i32.shl (i32.and (i32.shr_u (i32.load (i32.add (local.get $keys) (i32.shl (local.get $i) (i32.const 2)))) (local.get $shift)) (local.get $mask)) (i32.const 2))))
            (local.set $p (i32.load (local.get $at)))
            (i32.store (local.get $at) (i32.add (local.get $p) (i32.const 1)))
            (i32.store (i32.add (local.get $dst) (i32.shl (local.get $p) (i32.const 2))) (local.get $i))
            (local.set $t (i32.add (local.get $t) (i32.const 1)))
            (br $next))))))

  ;; The row's positions in rank order (by key, then position): at $pa or $pb, or 0 when that is
  ;; 0, 1, …, n − 1 (all keys equal). $n ≥ 1. $vary: the bits in which the keys differ; only those
  ;; from its lowest to its highest are sorted on, in 1 to 3 digits of equal width d ≤ 11 bits, the
  ;; counts of digit p at $hist + p · 2^d · 4 (at most 3 × 8 KiB).
  (func $row_sort (param $keys i32) (param $pa i32) (param $pb i32) (param $hist i32) (param $n i32) (param $vary i32) (result i32)
    (local $i i32) (local $k i32) (local $src i32) (local $dst i32) (local $first i32)
    (local $lo i32) (local $w i32) (local $passes i32) (local $d i32) (local $mask i32) (local $bins i32)
    (local $h1 i32) (local $h2 i32) (local $p i32) (local $shift i32) (local $hp i32) (local $at i32)
    (if (i32.eqz (local.get $vary)) (then (return (i32.const 0))))
    (local.set $lo (i32.ctz (local.get $vary)))
    (local.set $w (i32.sub (i32.sub (i32.const 32) (i32.clz (local.get $vary))) (local.get $lo)))
    (local.set $passes (i32.div_u (i32.add (local.get $w) (i32.const 10)) (i32.const 11)))
    (local.set $d (i32.div_u (i32.sub (i32.add (local.get $w) (local.get $passes)) (i32.const 1)) (local.get $passes)))
    (local.set $bins (i32.shl (i32.const 1) (local.get $d)))
    (local.set $mask (i32.sub (local.get $bins) (i32.const 1)))
    (local.set $h1 (i32.add (local.get $hist) (i32.shl (local.get $bins) (i32.const 2))))
    (local.set $h2 (i32.add (local.get $h1) (i32.shl (local.get $bins) (i32.const 2))))
    (memory.fill (local.get $hist) (i32.const 0) (i32.mul (local.get $passes) (i32.shl (local.get $bins) (i32.const 2))))
    ;; every digit's counts in one sweep (a loop per number of digits: no branch inside)
    (if (i32.eq (local.get $passes) (i32.const 1))
      (then
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
            (local.set $k (i32.shr_u (i32.load (i32.add (local.get $keys) (i32.shl (local.get $i) (i32.const 2)))) (local.get $lo)))
            (local.set $at (i32.add (local.get $hist) (i32.shl (i32.and (local.get $k) (local.get $mask)) (i32.const 2))))
            (i32.store (local.get $at) (i32.add (i32.load (local.get $at)) (i32.const 1)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $next)))))
    (if (i32.eq (local.get $passes) (i32.const 2))
      (then
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
            (local.set $k (i32.shr_u (i32.load (i32.add (local.get $keys) (i32.shl (local.get $i) (i32.const 2)))) (local.get $lo)))
            (local.set $at (i32.add (local.get $hist) (i32.shl (i32.and (local.get $k) (local.get $mask)) (i32.const 2))))
            (i32.store (local.get $at) (i32.add (i32.load (local.get $at)) (i32.const 1)))
            (local.set $at (i32.add (local.get $h1) (i32.shl (i32.and (i32.shr_u (local.get $k) (local.get $d)) (local.get $mask)) (i32.const 2))))
            (i32.store (local.get $at) (i32.add (i32.load (local.get $at)) (i32.const 1)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $next)))))
    (if (i32.eq (local.get $passes) (i32.const 3))
      (then
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
            (local.set $k (i32.shr_u (i32.load (i32.add (local.get $keys) (i32.shl (local.get $i) (i32.const 2)))) (local.get $lo)))
            (local.set $at (i32.add (local.get $hist) (i32.shl (i32.and (local.get $k) (local.get $mask)) (i32.const 2))))
            (i32.store (local.get $at) (i32.add (i32.load (local.get $at)) (i32.const 1)))
            (local.set $at (i32.add (local.get $h1) (i32.shl (i32.and (i32.shr_u (local.get $k) (local.get $d)) (local.get $mask)) (i32.const 2))))
            (i32.store (local.get $at) (i32.add (i32.load (local.get $at)) (i32.const 1)))
            (local.set $at (i32.add (local.get $h2) (i32.shl (i32.and (i32.shr_u (local.get $k) (i32.shl (local.get $d) (i32.const 1))) (local.get $mask)) (i32.const 2))))
            (i32.store (local.get $at) (i32.add (i32.load (local.get $at)) (i32.const 1)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $next)))))
    (local.set $first (i32.load (local.get $keys)))
    (local.set $dst (local.get $pa))
    (block $passes_done
      (loop $pass
        (br_if $passes_done (i32.ge_u (local.get $p) (local.get $passes)))
        (local.set $shift (i32.add (local.get $lo) (i32.mul (local.get $p) (local.get $d))))
        (local.set $hp (i32.add (local.get $hist) (i32.shl (i32.mul (local.get $p) (local.get $bins)) (i32.const 2))))
        ;; a digit every key shares leaves the order as it is
        (if (i32.ne (i32.load (i32.add (local.get $hp) (i32.shl (i32.and (i32.shr_u (local.get $first) (local.get $shift)) (local.get $mask)) (i32.const 2)))) (local.get $n))
          (then
            (call $radix_pass (local.get $keys) (local.get $src) (local.get $dst) (local.get $hp) (local.get $bins) (local.get $shift) (local.get $mask) (local.get $n))
            (local.set $src (local.get $dst))
            (local.set $dst (select (local.get $pb) (local.get $pa) (i32.eq (local.get $dst) (local.get $pa))))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $pass)))
    (local.get $src))

  ;; The keep thresholds of rank k in a row of $n, k < n, as u32 at $table + 4k: the counter hash z of
  ;; rank k's element keeps it where z / 2^32 < p = f(low + f(f(k / (n − 1))·span)), that is
  ;; z < ceil(p · 2^32) (exact in f32), or always where p ≥ 1 (stored as 2^32 − 1, which no p < 1
  ;; gives: p ≤ 1 − 2^−24 puts ceil(p · 2^32) at or below 2^32 − 256).
  (func $keep_table (param $table i32) (param $n i32) (param $low f32) (param $span f32)
    (local $r i32) (local $p v128) (local $denom v128)
    (local.set $denom (f32x4.splat (f32.convert_i32_u (select (i32.sub (local.get $n) (i32.const 1)) (i32.const 1) (i32.gt_u (local.get $n) (i32.const 1))))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $r) (local.get $n)))
        (local.set $p (f32x4.add (f32x4.splat (local.get $low))
          (f32x4.mul (f32x4.div (f32x4.convert_i32x4_u (i32x4.add (i32x4.splat (local.get $r)) (v128.const i32x4 0 1 2 3))) (local.get $denom))
                     (f32x4.splat (local.get $span)))))
        (v128.store (i32.add (local.get $table) (i32.shl (local.get $r) (i32.const 2)))
          (v128.or
            (i32x4.trunc_sat_f32x4_u (f32x4.ceil (f32x4.mul (local.get $p) (f32x4.splat (f32.const 4294967296)))))
            (f32x4.ge (local.get $p) (f32x4.splat (f32.const 1)))))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $next))))

  ;; The keep bytes of one row from its positions in rank order ($order, or 0 for 0, 1, …, n − 1):
  ;; rank k's element, at window index $e0 + position, is kept (1, at $pk + position) where the counter
  ;; hash z of its tensor index is below rank k's threshold ($keep_table).
  (func $row_keep (param $order i32) (param $pk i32) (param $n i32) (param $e0 i32) (param $idx_lo i32) (param $idx_hi i32)
                  (param $key i32) (param $table i32)
    (local $r i32) (local $left i32) (local $rv v128) (local $pos v128) (local $t v128) (local $e v128) (local $lo v128)
    (local $z v128) (local $keep v128)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $r) (local.get $n)))
        (local.set $rv (i32x4.add (i32x4.splat (local.get $r)) (v128.const i32x4 0 1 2 3)))
        (local.set $pos
          (if (result v128) (local.get $order)
            (then (v128.load align=4 (i32.add (local.get $order) (i32.shl (local.get $r) (i32.const 2)))))
            (else (local.get $rv))))
        (local.set $t (v128.load (i32.add (local.get $table) (i32.shl (local.get $r) (i32.const 2)))))
        (local.set $e (i32x4.add (i32x4.splat (local.get $e0)) (local.get $pos)))
        (local.set $lo (i32x4.add (i32x4.splat (local.get $idx_lo)) (local.get $e)))
        (local.set $z
          (v128.xor
            (v128.xor (i32x4.splat (local.get $key)) (i32x4.mul (local.get $lo) (i32x4.splat (i32.const 0x9e3779b9))))
            ;; the index's high word: idx_hi, plus 1 where the low word wrapped
            (i32x4.sub (i32x4.splat (local.get $idx_hi)) (i32x4.lt_u (local.get $lo) (local.get $e)))))
        (local.set $z (i32x4.mul (v128.xor (local.get $z) (i32x4.shr_u (local.get $z) (i32.const 16))) (i32x4.splat (i32.const 0x85ebca6b))))
        (local.set $z (i32x4.mul (v128.xor (local.get $z) (i32x4.shr_u (local.get $z) (i32.const 13))) (i32x4.splat (i32.const 0xc2b2ae35))))
        (local.set $z (v128.xor (local.get $z) (i32x4.shr_u (local.get $z) (i32.const 16))))
        (local.set $keep (v128.or (i32x4.lt_u (local.get $z) (local.get $t)) (i32x4.eq (local.get $t) (v128.const i32x4 -1 -1 -1 -1))))
        (local.set $left (i32.sub (local.get $n) (local.get $r)))
        (i32.store8 (i32.add (local.get $pk) (i32x4.extract_lane 0 (local.get $pos))) (i32.and (i32x4.extract_lane 0 (local.get $keep)) (i32.const 1)))
        (if (i32.gt_u (local.get $left) (i32.const 1))
          (then (i32.store8 (i32.add (local.get $pk) (i32x4.extract_lane 1 (local.get $pos))) (i32.and (i32x4.extract_lane 1 (local.get $keep)) (i32.const 1)))))
        (if (i32.gt_u (local.get $left) (i32.const 2))
          (then (i32.store8 (i32.add (local.get $pk) (i32x4.extract_lane 2 (local.get $pos))) (i32.and (i32x4.extract_lane 2 (local.get $keep)) (i32.const 1)))))
        (if (i32.gt_u (local.get $left) (i32.const 3))
          (then (i32.store8 (i32.add (local.get $pk) (i32x4.extract_lane 3 (local.get $pos))) (i32.and (i32x4.extract_lane 3 (local.get $keep)) (i32.const 1)))))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $next))))

  (func (export "drank")
    (param $in i32) (param $count i32) (param $params i32) (param $rows i32) (param $n i32)
    (param $u0 i32) (param $u1 i32) (param $bf_in i32) (param $flags i32) (param $idx_lo i32) (param $idx_hi i32) (param $sort i32)
    (local $u i32) (local $j i32) (local $e0 i32) (local $stride i32) (local $pa i32) (local $pb i32) (local $hist i32)
    (local $size i32) (local $at i32) (local $table i32) (local $table_of i32)
    (local.set $stride (i32.and (i32.add (i32.shl (local.get $n) (i32.const 2)) (i32.const 15)) (i32.const -16)))
    (local.set $pa (i32.add (local.get $sort) (local.get $stride)))
    (local.set $pb (i32.add (local.get $pa) (local.get $stride)))
    (local.set $hist (i32.add (local.get $pb) (local.get $stride)))
    (local.set $table (i32.add (local.get $hist) (i32.const 24576)))
    (local.set $table_of (i32.const -1))
    (local.set $size (select (i32.const 2) (i32.const 4) (local.get $bf_in)))
    (local.set $u (local.get $u0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $u) (local.get $u1)))
        (local.set $j (i32.div_u (local.get $u) (local.get $rows)))
        (local.set $e0 (i32.mul (i32.sub (local.get $u) (i32.mul (local.get $j) (local.get $rows))) (local.get $n)))
        (local.set $at (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 2))))
        (if (i32.ne (local.get $j) (local.get $table_of))
          (then
            (call $keep_table (local.get $table) (local.get $n) (f32.load offset=64 (local.get $at)) (f32.load offset=128 (local.get $at)))
            (local.set $table_of (local.get $j))))
        (call $row_keep
          (call $row_sort (local.get $sort) (local.get $pa) (local.get $pb) (local.get $hist) (local.get $n)
            (call $row_keys
              (i32.add (i32.load (i32.add (local.get $in) (i32.shl (i32.add (local.get $j) (i32.const 1)) (i32.const 2)))) (i32.mul (local.get $e0) (local.get $size)))
              (i32.add (i32.load (local.get $in)) (i32.mul (local.get $e0) (local.get $size)))
              (local.get $sort) (local.get $n) (local.get $bf_in) (i32.shr_u (i32.and (local.get $flags) (i32.const 24)) (i32.const 3))))
          (i32.add (i32.load (i32.add (local.get $in) (i32.shl (i32.add (i32.add (local.get $count) (i32.const 1)) (local.get $j)) (i32.const 2)))) (local.get $e0))
          (local.get $n) (local.get $e0) (local.get $idx_lo) (local.get $idx_hi)
          (i32.load (local.get $at)) (local.get $table))
        (local.set $u (i32.add (local.get $u) (i32.const 1)))
        (br $next))))

  ;; ---- torch's f32 reductions in its own order (methods/torch-reductions.ts) ----

  ;; normsq: TorchNorm's lanes. For input j, the 8 f32 at $state + 32j: lane l += x² (rounded to
  ;; f32, then the sum) for the elements of [start, end) at l mod 8, in index order; the host starts
  ;; each call at a lane-0 element. Zeros that pad a window add +0: nothing.
  (func (export "normsq")
    (param $in i32) (param $seg i32) (param $count i32) (param $start i32) (param $end i32) (param $bf_in i32) (param $state i32) (param $models i32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $j i32) (local $px i32) (local $i i32) (local $stop i32) (local $at i32)
    (local $lo v128) (local $hi v128) (local $x v128) (local $y v128)
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (call $tile_len (local.get $t) (local.get $end)))
        (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
        (local.set $j (i32.const 0))
        (block $inputs_done
          (loop $inputs
            (br_if $inputs_done (i32.ge_u (local.get $j) (local.get $count)))
            (block $skip
            (br_if $skip (i32.eqz (i32.and (local.get $models) (i32.shl (i32.const 1) (local.get $j)))))
            (local.set $px (call $tile_in (local.get $in) (local.get $seg) (local.get $j) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 0)))
            (local.set $at (i32.add (local.get $state) (i32.shl (local.get $j) (i32.const 5))))
            (local.set $lo (v128.load (local.get $at)))
            (local.set $hi (v128.load offset=16 (local.get $at)))
            (local.set $i (i32.const 0))
            (block $done
              (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                (local.set $x (v128.load (i32.add (local.get $px) (local.get $i))))
                (local.set $y (v128.load offset=16 (i32.add (local.get $px) (local.get $i))))
                (local.set $lo (f32x4.add (local.get $lo) (f32x4.mul (local.get $x) (local.get $x))))
                (local.set $hi (f32x4.add (local.get $hi) (f32x4.mul (local.get $y) (local.get $y))))
                (local.set $i (i32.add (local.get $i) (i32.const 32)))
                (br $next)))
            (v128.store (local.get $at) (local.get $lo))
            (v128.store offset=16 (local.get $at) (local.get $hi))
            )
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $inputs)))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; gram: karcher's Gram sums. For inputs j ≤ k (j among those whose bit is set in $models, so a
  ;; thread takes whole rows): the f64 at $sums + 8(j·count + k) += x_j·x_k (f64 product of the f32
  ;; values, exact), element by element in index order. Zeros that pad a window add +0: nothing.
  ;; Each f64 sum is a chain of dependent adds, so a row's sums go four at a time (two f64x2 vectors;
  ;; one where two or fewer are left) to keep several chains in flight; a sum past the last input
  ;; reads x_j and is dropped.
  (func (export "gram")
    (param $in i32) (param $seg i32) (param $count i32) (param $start i32) (param $end i32) (param $bf_in i32) (param $sums i32) (param $models i32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $j i32) (local $k i32) (local $s i32) (local $pj i32) (local $i i32) (local $stop i32) (local $at i32)
    (local $p0 i32) (local $p1 i32) (local $p2 i32) (local $p3 i32) (local $x v128) (local $lo v128) (local $hi v128)
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (call $tile_len (local.get $t) (local.get $end)))
        (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
        (local.set $j (i32.const 0))
        (block $rows_done
          (loop $rows
            (br_if $rows_done (i32.ge_u (local.get $j) (local.get $count)))
            (block $skip
            (br_if $skip (i32.eqz (i32.and (local.get $models) (i32.shl (i32.const 1) (local.get $j)))))
            (local.set $pj (call $tile_in (local.get $in) (local.get $seg) (local.get $j) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 0)))
            (local.set $k (local.get $j))
            (block $cols_done
              (loop $cols
                (br_if $cols_done (i32.ge_u (local.get $k) (local.get $count)))
                (local.set $at (i32.add (local.get $sums)
                  (i32.shl (i32.add (i32.mul (local.get $j) (local.get $count)) (local.get $k)) (i32.const 3))))
                (local.set $s (i32.sub (local.get $count) (local.get $k)))
                (local.set $p0 (call $gram_col (local.get $in) (local.get $seg) (local.get $count) (local.get $j) (local.get $k) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (local.get $pj)))
                (local.set $p1 (call $gram_col (local.get $in) (local.get $seg) (local.get $count) (local.get $j) (i32.add (local.get $k) (i32.const 1)) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (local.get $pj)))
                (local.set $p2 (call $gram_col (local.get $in) (local.get $seg) (local.get $count) (local.get $j) (i32.add (local.get $k) (i32.const 2)) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (local.get $pj)))
                (local.set $p3 (call $gram_col (local.get $in) (local.get $seg) (local.get $count) (local.get $j) (i32.add (local.get $k) (i32.const 3)) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (local.get $pj)))
                (local.set $lo (f64x2.replace_lane 1 (f64x2.splat (f64.load (local.get $at)))
                  (select (f64.load offset=8 (local.get $at)) (f64.const 0) (i32.gt_u (local.get $s) (i32.const 1)))))
                (local.set $hi (f64x2.replace_lane 1
                  (f64x2.splat (select (f64.load offset=16 (local.get $at)) (f64.const 0) (i32.gt_u (local.get $s) (i32.const 2))))
                  (select (f64.load offset=24 (local.get $at)) (f64.const 0) (i32.gt_u (local.get $s) (i32.const 3)))))
                (local.set $i (i32.const 0))
                (if (i32.gt_u (local.get $s) (i32.const 2))
                  (then
                    (block $done
                      (loop $next
                        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                        (local.set $x (f64x2.splat (f64.promote_f32 (f32.load (i32.add (local.get $pj) (local.get $i))))))
                        (local.set $lo (f64x2.add (local.get $lo) (f64x2.mul (local.get $x) (f64x2.promote_low_f32x4
                          (v128.load32_lane 1 (i32.add (local.get $p1) (local.get $i)) (v128.load32_zero (i32.add (local.get $p0) (local.get $i))))))))
                        (local.set $hi (f64x2.add (local.get $hi) (f64x2.mul (local.get $x) (f64x2.promote_low_f32x4
                          (v128.load32_lane 1 (i32.add (local.get $p3) (local.get $i)) (v128.load32_zero (i32.add (local.get $p2) (local.get $i))))))))
                        (local.set $i (i32.add (local.get $i) (i32.const 4)))
                        (br $next))))
                  (else
                    (block $done
                      (loop $next
                        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                        (local.set $lo (f64x2.add (local.get $lo) (f64x2.mul
                          (f64x2.splat (f64.promote_f32 (f32.load (i32.add (local.get $pj) (local.get $i)))))
                          (f64x2.promote_low_f32x4
                            (v128.load32_lane 1 (i32.add (local.get $p1) (local.get $i)) (v128.load32_zero (i32.add (local.get $p0) (local.get $i))))))))
                        (local.set $i (i32.add (local.get $i) (i32.const 4)))
                        (br $next)))))
                (f64.store (local.get $at) (f64x2.extract_lane 0 (local.get $lo)))
                (if (i32.gt_u (local.get $s) (i32.const 1)) (then (f64.store offset=8 (local.get $at) (f64x2.extract_lane 1 (local.get $lo)))))
                (if (i32.gt_u (local.get $s) (i32.const 2)) (then (f64.store offset=16 (local.get $at) (f64x2.extract_lane 0 (local.get $hi)))))
                (if (i32.gt_u (local.get $s) (i32.const 3)) (then (f64.store offset=24 (local.get $at) (f64x2.extract_lane 1 (local.get $hi)))))
                (local.set $k (i32.add (local.get $k) (i32.const 4)))
                (br $cols)))
            )
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $rows)))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; Where gram's column k of row j reads its f32 values: x_j's own when k is j or past the last input
  ;; (a sum that is dropped), else input k's tile, widened into scratch tile 1 + k mod 4 if bf16.
  (func $gram_col (param $in i32) (param $seg i32) (param $count i32) (param $j i32) (param $k i32) (param $t i32) (param $n i32)
                  (param $bf i32) (param $scratch i32) (param $pj i32) (result i32)
    (if (result i32) (i32.or (i32.eq (local.get $k) (local.get $j)) (i32.ge_u (local.get $k) (local.get $count)))
      (then (local.get $pj))
      (else (call $tile_in (local.get $in) (local.get $seg) (local.get $k) (local.get $t) (local.get $n) (local.get $bf) (local.get $scratch)
                           (i32.add (i32.const 1) (i32.and (local.get $k) (i32.const 3)))))))

  ;; cdot: slerp's normalized dot as torch sums it (TorchSum: 8 lanes × 4, a four-level cascade).
  ;; Each row is 32 values v = r(r(a / n0) · r(b / n1)) (a, b: inputs 0 and 1); [start, end) is
  ;; whole rows. State at $state: the accumulators f32[4][32] (+0), rows done (+512), log2 of the
  ;; cascade step (+516), the rows after which it stops cascading (+520). With $step (1 bf16, 2 f16
  ;; steps) each v is then rounded: a pass over the tile first writes those into scratch tile 3,
  ;; and the sum reads them as a = v, b = 1 with n0 = n1 = 1 (v / 1 · 1 / 1 is v), so the f32 loop
  ;; stays as it is.
  (func (export "cdot")
    (param $in i32) (param $seg i32) (param $start i32) (param $end i32) (param $bf_in i32) (param $n0 f32) (param $n1 f32) (param $state i32) (param $step i32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $pa i32) (local $pb i32) (local $i i32) (local $stop i32) (local $k i32) (local $level i32)
    (local $rows i32) (local $power i32) (local $full i32) (local $mask i32)
    (local $k0 v128) (local $k1 v128) (local $q0 v128) (local $q1 v128) (local $v v128) (local $prods i32) (local $ones i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $a4 v128) (local $a5 v128) (local $a6 v128) (local $a7 v128)
    (local.set $k0 (f32x4.splat (local.get $n0)))
    (local.set $k1 (f32x4.splat (local.get $n1)))
    (local.set $prods (call $scratch_tile (local.get $scratch) (i32.const 3)))
    (local.set $ones (call $scratch_tile (local.get $scratch) (i32.const 4)))
    (if (local.get $step)
      (then
        (local.set $q0 (local.get $k0))
        (local.set $q1 (local.get $k1))
        (local.set $k0 (f32x4.splat (f32.const 1)))
        (local.set $k1 (f32x4.splat (f32.const 1)))
        (local.set $i (i32.const 0))
        (block $filled
          (loop $fill
            (br_if $filled (i32.ge_u (local.get $i) (global.get $tile_bytes)))
            (v128.store (i32.add (local.get $ones) (local.get $i)) (local.get $k0))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $fill)))))
    (local.set $rows (i32.load offset=512 (local.get $state)))
    (local.set $power (i32.load offset=516 (local.get $state)))
    (local.set $full (i32.load offset=520 (local.get $state)))
    (local.set $mask (i32.sub (i32.shl (i32.const 1) (local.get $power)) (i32.const 1)))
    (local.set $a0 (v128.load (local.get $state)))
    (local.set $a1 (v128.load offset=16 (local.get $state)))
    (local.set $a2 (v128.load offset=32 (local.get $state)))
    (local.set $a3 (v128.load offset=48 (local.get $state)))
    (local.set $a4 (v128.load offset=64 (local.get $state)))
    (local.set $a5 (v128.load offset=80 (local.get $state)))
    (local.set $a6 (v128.load offset=96 (local.get $state)))
    (local.set $a7 (v128.load offset=112 (local.get $state)))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (call $tile_len (local.get $t) (local.get $end)))
        (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
        (local.set $pa (call $tile_in (local.get $in) (local.get $seg) (i32.const 0) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 0)))
        (local.set $pb (call $tile_in (local.get $in) (local.get $seg) (i32.const 1) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 1)))
        (if (local.get $step)
          (then
            ;; tile 3 = r(f(a / n0) · f(b / n1)), r to bf16 or f16; the sum then reads it against the ones
            (local.set $i (i32.const 0))
            (block $rounded
              (loop $round
                (br_if $rounded (i32.ge_u (local.get $i) (local.get $stop)))
                (local.set $v (f32x4.mul (f32x4.div (v128.load (i32.add (local.get $pa) (local.get $i))) (local.get $q0))
                                         (f32x4.div (v128.load (i32.add (local.get $pb) (local.get $i))) (local.get $q1))))
                (v128.store (i32.add (local.get $prods) (local.get $i))
                  (if (result v128) (i32.eq (local.get $step) (i32.const 2))
                    (then (v128.bitselect ;; $rnd_f16, inlined
                        (i32x4.splat (i32.const 0x7fc00000))
                        (v128.or
                          (v128.bitselect
                            (i32x4.splat (i32.const 0x7f800000))
                            (f32x4.sub (f32x4.add (v128.and (local.get $v) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $v) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $v) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                            (i32x4.ge_u (v128.and (local.get $v) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
                          (v128.and (local.get $v) (i32x4.splat (i32.const 0x80000000))))
                        (i32x4.gt_u (v128.and (local.get $v) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000)))))
                    (else
                      (v128.bitselect
                        (i32x4.splat (i32.const 0x7fc00000))
                        (v128.and
                          (i32x4.add (i32x4.add (local.get $v) (i32x4.splat (i32.const 0x7fff)))
                                     (v128.and (i32x4.shr_u (local.get $v) (i32.const 16)) (i32x4.splat (i32.const 1))))
                          (i32x4.splat (i32.const 0xffff0000)))
                        (f32x4.ne (local.get $v) (local.get $v))))))
                (local.set $i (i32.add (local.get $i) (i32.const 16)))
                (br $round)))
            (local.set $pa (local.get $prods))
            (local.set $pb (local.get $ones))))
        (local.set $i (i32.const 0))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
            (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (f32x4.div (v128.load offset=0 (i32.add (local.get $pa) (local.get $i))) (local.get $k0))
                                                                 (f32x4.div (v128.load offset=0 (i32.add (local.get $pb) (local.get $i))) (local.get $k1)))))
            (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (f32x4.div (v128.load offset=16 (i32.add (local.get $pa) (local.get $i))) (local.get $k0))
                                                                 (f32x4.div (v128.load offset=16 (i32.add (local.get $pb) (local.get $i))) (local.get $k1)))))
            (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (f32x4.div (v128.load offset=32 (i32.add (local.get $pa) (local.get $i))) (local.get $k0))
                                                                 (f32x4.div (v128.load offset=32 (i32.add (local.get $pb) (local.get $i))) (local.get $k1)))))
            (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (f32x4.div (v128.load offset=48 (i32.add (local.get $pa) (local.get $i))) (local.get $k0))
                                                                 (f32x4.div (v128.load offset=48 (i32.add (local.get $pb) (local.get $i))) (local.get $k1)))))
            (local.set $a4 (f32x4.add (local.get $a4) (f32x4.mul (f32x4.div (v128.load offset=64 (i32.add (local.get $pa) (local.get $i))) (local.get $k0))
                                                                 (f32x4.div (v128.load offset=64 (i32.add (local.get $pb) (local.get $i))) (local.get $k1)))))
            (local.set $a5 (f32x4.add (local.get $a5) (f32x4.mul (f32x4.div (v128.load offset=80 (i32.add (local.get $pa) (local.get $i))) (local.get $k0))
                                                                 (f32x4.div (v128.load offset=80 (i32.add (local.get $pb) (local.get $i))) (local.get $k1)))))
            (local.set $a6 (f32x4.add (local.get $a6) (f32x4.mul (f32x4.div (v128.load offset=96 (i32.add (local.get $pa) (local.get $i))) (local.get $k0))
                                                                 (f32x4.div (v128.load offset=96 (i32.add (local.get $pb) (local.get $i))) (local.get $k1)))))
            (local.set $a7 (f32x4.add (local.get $a7) (f32x4.mul (f32x4.div (v128.load offset=112 (i32.add (local.get $pa) (local.get $i))) (local.get $k0))
                                                                 (f32x4.div (v128.load offset=112 (i32.add (local.get $pb) (local.get $i))) (local.get $k1)))))
            (local.set $rows (i32.add (local.get $rows) (i32.const 1)))
            ;; Every 2^power rows (up to the last whole block), level 0 moves up a level, and on as
            ;; long as the rows done are a multiple of that level's span.
            (if (i32.and (i32.le_u (local.get $rows) (local.get $full)) (i32.eqz (i32.and (local.get $rows) (local.get $mask))))
              (then
                (v128.store offset=0 (local.get $state) (local.get $a0))
                (v128.store offset=16 (local.get $state) (local.get $a1))
                (v128.store offset=32 (local.get $state) (local.get $a2))
                (v128.store offset=48 (local.get $state) (local.get $a3))
                (v128.store offset=64 (local.get $state) (local.get $a4))
                (v128.store offset=80 (local.get $state) (local.get $a5))
                (v128.store offset=96 (local.get $state) (local.get $a6))
                (v128.store offset=112 (local.get $state) (local.get $a7))
                (local.set $level (i32.const 1))
                (block $cascaded
                  (loop $up
                    (local.set $k (i32.const 0))
                    (block $moved
                      (loop $move
                        (br_if $moved (i32.ge_u (local.get $k) (i32.const 128)))
                        (v128.store (i32.add (i32.add (local.get $state) (i32.shl (local.get $level) (i32.const 7))) (local.get $k))
                          (f32x4.add (v128.load (i32.add (i32.add (local.get $state) (i32.shl (local.get $level) (i32.const 7))) (local.get $k)))
                                     (v128.load (i32.add (i32.add (local.get $state) (i32.shl (i32.sub (local.get $level) (i32.const 1)) (i32.const 7))) (local.get $k)))))
                        (v128.store (i32.add (i32.add (local.get $state) (i32.shl (i32.sub (local.get $level) (i32.const 1)) (i32.const 7))) (local.get $k)) (v128.const i32x4 0 0 0 0))
                        (local.set $k (i32.add (local.get $k) (i32.const 16)))
                        (br $move)))
                    (br_if $cascaded (i32.ge_u (local.get $level) (i32.const 3)))
                    (br_if $cascaded (i32.and (i32.shr_u (local.get $rows) (i32.mul (local.get $level) (local.get $power))) (local.get $mask)))
                    (local.set $level (i32.add (local.get $level) (i32.const 1)))
                    (br $up)))
                (local.set $a0 (v128.const i32x4 0 0 0 0))
                (local.set $a1 (v128.const i32x4 0 0 0 0))
                (local.set $a2 (v128.const i32x4 0 0 0 0))
                (local.set $a3 (v128.const i32x4 0 0 0 0))
                (local.set $a4 (v128.const i32x4 0 0 0 0))
                (local.set $a5 (v128.const i32x4 0 0 0 0))
                (local.set $a6 (v128.const i32x4 0 0 0 0))
                (local.set $a7 (v128.const i32x4 0 0 0 0))))
            (local.set $i (i32.add (local.get $i) (i32.const 128)))
            (br $next)))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles)))
    (v128.store offset=0 (local.get $state) (local.get $a0))
    (v128.store offset=16 (local.get $state) (local.get $a1))
    (v128.store offset=32 (local.get $state) (local.get $a2))
    (v128.store offset=48 (local.get $state) (local.get $a3))
    (v128.store offset=64 (local.get $state) (local.get $a4))
    (v128.store offset=80 (local.get $state) (local.get $a5))
    (v128.store offset=96 (local.get $state) (local.get $a6))
    (v128.store offset=112 (local.get $state) (local.get $a7))
    (i32.store offset=512 (local.get $state) (local.get $rows)))

  ;; ---- sce's merge pass (compute/reference.ts sceMergeF32), a tile of up to 1024 elements at a time ----
  ;;
  ;; Scratch tiles: 0 the base widened, 1 a model widened, 2 a bf16 output before narrowing, 3
  ;; merged, 4 the keep mask then total, 5 the vote, 6..21 δ_j.

  ;; The keep masks (all ones where kept) of the variances at $v, into $p: their magnitude bits
  ;; (every NaN 0x7fc00000) above $u (unsigned), or equal to it before window index $cu.
  (func $sce_cut_tile (param $p i32) (param $v i32) (param $n i32) (param $e0 i32) (param $u i32) (param $cu i32)
    (local $i i32) (local $stop i32) (local $bits v128) (local $e v128) (local $uv v128) (local $cuv v128)
    (local.set $uv (i32x4.splat (local.get $u)))
    (local.set $cuv (i32x4.splat (local.get $cu)))
    (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
        (local.set $bits (v128.and (v128.load (i32.add (local.get $v) (local.get $i))) (i32x4.splat (i32.const 0x7fffffff))))
        (local.set $bits (v128.bitselect (i32x4.splat (i32.const 0x7fc00000)) (local.get $bits) (i32x4.gt_s (local.get $bits) (i32x4.splat (i32.const 0x7f800000)))))
        (local.set $e (i32x4.add (i32x4.splat (i32.add (local.get $e0) (i32.shr_u (local.get $i) (i32.const 2)))) (v128.const i32x4 0 1 2 3)))
        (v128.store (i32.add (local.get $p) (local.get $i))
          (v128.or (i32x4.gt_u (local.get $bits) (local.get $uv))
                   (v128.and (i32x4.eq (local.get $bits) (local.get $uv)) (i32x4.lt_s (local.get $e) (local.get $cuv)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; $p &= $m (bitwise), $n f32: a dropped δ becomes +0.
  (func $sce_and_tile (param $p i32) (param $m i32) (param $n i32)
    (local $i i32) (local $stop i32)
    (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
        (v128.store (i32.add (local.get $p) (local.get $i))
          (v128.and (v128.load (i32.add (local.get $p) (local.get $i))) (v128.load (i32.add (local.get $m) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; One model's turn: w = $w where tv has the sign the vote elected (≥ 0 is +; a zero or NaN agrees
  ;; with neither), else +0; merged += r(tv · w), total += w (r rounds to bf16 with $bf, else to f32).
  (func $sce_agree_tile (param $merged i32) (param $total i32) (param $d i32) (param $vote i32) (param $n i32) (param $w f32) (param $bf i32)
    (local $i i32) (local $stop i32) (local $x v128) (local $wsel v128) (local $zero v128) (local $p v128)
    (local.set $zero (f32x4.splat (f32.const 0)))
    (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
        (local.set $x (v128.load (i32.add (local.get $d) (local.get $i))))
        (local.set $wsel
          (v128.and (f32x4.splat (local.get $w))
            (v128.bitselect (f32x4.gt (local.get $x) (local.get $zero))
                            (f32x4.lt (local.get $x) (local.get $zero))
                            (f32x4.ge (v128.load (i32.add (local.get $vote) (local.get $i))) (local.get $zero)))))
        (local.set $p (f32x4.mul (local.get $x) (local.get $wsel)))
        (if (local.get $bf) (then (local.set $p (if (result v128) (i32.eq (local.get $bf) (i32.const 2)) (then (v128.bitselect ;; $rnd_f16, inlined
            (i32x4.splat (i32.const 0x7fc00000))
            (v128.or
              (v128.bitselect
                (i32x4.splat (i32.const 0x7f800000))
                (f32x4.sub (f32x4.add (v128.and (local.get $p) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                (i32x4.ge_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
              (v128.and (local.get $p) (i32x4.splat (i32.const 0x80000000))))
            (i32x4.gt_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))) (else (v128.bitselect (i32x4.splat (i32.const 0x7fc00000)) (v128.and (i32x4.add (i32x4.add (local.get $p) (i32x4.splat (i32.const 0x7fff))) (v128.and (i32x4.shr_u (local.get $p) (i32.const 16)) (i32x4.splat (i32.const 1)))) (i32x4.splat (i32.const 0xffff0000))) (f32x4.ne (local.get $p) (local.get $p))))))))
        (v128.store (i32.add (local.get $merged) (local.get $i))
          (f32x4.add (v128.load (i32.add (local.get $merged) (local.get $i))) (local.get $p)))
        (v128.store (i32.add (local.get $total) (local.get $i))
          (f32x4.add (v128.load (i32.add (local.get $total) (local.get $i))) (local.get $wsel)))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; $po = r($pb + r($merged / max($total, r(1e-6)))), $n f32, every NaN as 0x7fc00000 (which of
  ;; two NaNs an addition returns is up to the hardware and the operand order the JIT picks). r
  ;; rounds to f32, or with $bf to bf16 (1) or f16 (2): $merged and $total are then rounded already,
  ;; and the host rounds $po after.
  (func $sce_out_tile (param $po i32) (param $pb i32) (param $merged i32) (param $total i32) (param $n i32) (param $bf i32)
    (local $i i32) (local $stop i32) (local $floor v128) (local $r v128) (local $q v128)
    (local.set $floor (i32x4.splat (select (select (i32.const 0x35880000) (i32.const 0x35860000) (i32.eq (local.get $bf) (i32.const 2))) (i32.const 0x358637bd) (local.get $bf))))
    (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
        (local.set $q
          (f32x4.div (v128.load (i32.add (local.get $merged) (local.get $i)))
                     (f32x4.max (v128.load (i32.add (local.get $total) (local.get $i))) (local.get $floor))))
        (if (local.get $bf) (then (local.set $q (if (result v128) (i32.eq (local.get $bf) (i32.const 2)) (then (v128.bitselect ;; $rnd_f16, inlined
            (i32x4.splat (i32.const 0x7fc00000))
            (v128.or
              (v128.bitselect
                (i32x4.splat (i32.const 0x7f800000))
                (f32x4.sub (f32x4.add (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                (i32x4.ge_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
              (v128.and (local.get $q) (i32x4.splat (i32.const 0x80000000))))
            (i32x4.gt_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))) (else (v128.bitselect (i32x4.splat (i32.const 0x7fc00000)) (v128.and (i32x4.add (i32x4.add (local.get $q) (i32x4.splat (i32.const 0x7fff))) (v128.and (i32x4.shr_u (local.get $q) (i32.const 16)) (i32x4.splat (i32.const 1)))) (i32x4.splat (i32.const 0xffff0000))) (f32x4.ne (local.get $q) (local.get $q))))))))
        (local.set $r (f32x4.add (v128.load (i32.add (local.get $pb) (local.get $i))) (local.get $q)))
        (v128.store (i32.add (local.get $po) (local.get $i))
          (v128.bitselect (i32x4.splat (i32.const 0x7fc00000)) (local.get $r) (f32x4.ne (local.get $r) (local.get $r))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; sce: input 0 is the base, inputs 1..count the models; the weights are `count` f32 at $params.
  ;; With $select, an element is kept where its variance (f32, segment count + 1, after the inputs)
  ;; passes the cut: bits $cut_bits, its ties kept before tensor index i64 at $params + 64;
  ;; $idx_lo/$idx_hi: the tensor index of the window's element 0. With $only ≥ 0 the output is model
  ;; $only's kept δ (0 where dropped), for its mean square, and nothing is merged. With $step (1 bf16,
  ;; 2 f16 steps) δ_j, the vote (before its sign is read), each r(tv·w), merged, total, the quotient
  ;; and the output are rounded to the step.
  (func (export "sce")
    (param $in i32) (param $seg i32) (param $count i32) (param $params i32)
    (param $start i32) (param $end i32) (param $out i32) (param $bf_in i32) (param $bf_out i32)
    (param $idx_lo i32) (param $idx_hi i32) (param $select i32) (param $cut_bits i32) (param $only i32) (param $step i32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $j i32) (local $pb i32) (local $po i32) (local $bytes i32)
    (local $merged i32) (local $keep i32) (local $vote i32) (local $cu i32)
    (local.set $merged (call $scratch_tile (local.get $scratch) (i32.const 3)))
    (local.set $keep (call $scratch_tile (local.get $scratch) (i32.const 4)))
    (local.set $vote (call $scratch_tile (local.get $scratch) (i32.const 5)))
    (local.set $cu (call $rel_cut (i64.load offset=64 (local.get $params)) (local.get $idx_lo) (local.get $idx_hi)))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (call $tile_len (local.get $t) (local.get $end)))
        (local.set $bytes (i32.shl (local.get $n) (i32.const 2)))
        (local.set $pb (call $tile_in (local.get $in) (local.get $seg) (i32.const 0) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 0)))
        ;; δ_j = f(x_j − base)
        (local.set $j (i32.const 0))
        (block $d_done
          (loop $d
            (br_if $d_done (i32.ge_u (local.get $j) (local.get $count)))
            (call $sub_tile (call $scratch_tile (local.get $scratch) (i32.add (local.get $j) (i32.const 6)))
              (call $tile_in (local.get $in) (local.get $seg) (i32.add (local.get $j) (i32.const 1)) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 1))
              (local.get $pb) (local.get $n))
            (if (local.get $step) (then (call $rnd_tile (call $scratch_tile (local.get $scratch) (i32.add (local.get $j) (i32.const 6))) (local.get $n) (local.get $step))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $d)))
        (if (local.get $select)
          (then
            ;; the dropped δ_j become 0
            (call $sce_cut_tile (local.get $keep)
              (call $tile_in (local.get $in) (local.get $seg) (i32.add (local.get $count) (i32.const 1)) (local.get $t) (local.get $n) (i32.const 0) (local.get $scratch) (i32.const 4))
              (local.get $n) (local.get $t) (local.get $cut_bits) (local.get $cu))
            (local.set $j (i32.const 0))
            (block $m_done
              (loop $m
                (br_if $m_done (i32.ge_u (local.get $j) (local.get $count)))
                (call $sce_and_tile (call $scratch_tile (local.get $scratch) (i32.add (local.get $j) (i32.const 6))) (local.get $keep) (local.get $n))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $m)))))
        (if (i32.ge_s (local.get $only) (i32.const 0))
          (then
            (local.set $po (call $tile_out (local.get $out) (local.get $t) (local.get $bf_out) (local.get $scratch)))
            (memory.copy (local.get $po) (call $scratch_tile (local.get $scratch) (i32.add (local.get $only) (i32.const 6))) (local.get $bytes))
            (call $tile_done (local.get $out) (local.get $t) (local.get $n) (local.get $bf_out) (local.get $scratch))
            (local.set $t (i32.add (local.get $t) (local.get $n)))
            (br $tiles)))
        ;; vote = Σ tv_j; merged (tile 3) and total (tile 4) over the models that agree with it
        (memory.fill (local.get $vote) (i32.const 0) (local.get $bytes))
        (local.set $j (i32.const 0))
        (block $v_done
          (loop $v
            (br_if $v_done (i32.ge_u (local.get $j) (local.get $count)))
            (call $add_tile (local.get $vote) (local.get $vote) (call $scratch_tile (local.get $scratch) (i32.add (local.get $j) (i32.const 6))) (local.get $n))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $v)))
        (if (local.get $step) (then (call $rnd_tile (local.get $vote) (local.get $n) (local.get $step))))
        (memory.fill (local.get $merged) (i32.const 0) (local.get $bytes))
        (memory.fill (local.get $keep) (i32.const 0) (local.get $bytes))
        (local.set $j (i32.const 0))
        (block $a_done
          (loop $a
            (br_if $a_done (i32.ge_u (local.get $j) (local.get $count)))
            (call $sce_agree_tile (local.get $merged) (local.get $keep) (call $scratch_tile (local.get $scratch) (i32.add (local.get $j) (i32.const 6)))
                                  (local.get $vote) (local.get $n) (f32.load (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 2))))
                                  (local.get $step))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $a)))
        (if (local.get $step)
          (then
            (call $rnd_tile (local.get $merged) (local.get $n) (local.get $step))
            (call $rnd_tile (local.get $keep) (local.get $n) (local.get $step))))
        (local.set $po (call $tile_out (local.get $out) (local.get $t) (local.get $bf_out) (local.get $scratch)))
        (call $sce_out_tile (local.get $po) (local.get $pb) (local.get $merged) (local.get $keep) (local.get $n) (local.get $step))
        (if (local.get $step) (then (call $rnd_tile (local.get $po) (local.get $n) (local.get $step))))
        (call $tile_done (local.get $out) (local.get $t) (local.get $n) (local.get $bf_out) (local.get $scratch))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; ---- ram's and ramplus_tl's passes (compute/reference.ts ramCountsF32, ramMergeF32) ----
  ;;
  ;; Scratch tiles: 0 the base widened, 1 a model widened, 2 a bf16 output before narrowing, 3 the
  ;; count c of changed δ, 4 merged, 6..21 δ_j (ram) or their changed masks (ramc). ramc's counts:
  ;; u32 pairs (shared, unique) per model after the 22 tiles, the thread's own (the host clears
  ;; them before a window and adds them up after it).

  ;; $p = $p where |$p| > $thr, else +0 ($n f32).
  (func $ram_keep_tile (param $p i32) (param $n i32) (param $thr f32)
    (local $end i32) (local $x v128) (local $tv v128)
    (local.set $tv (f32x4.splat (local.get $thr)))
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $x (v128.load (local.get $p)))
        (v128.store (local.get $p) (v128.and (local.get $x) (f32x4.gt (f32x4.abs (local.get $x)) (local.get $tv))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next))))

  ;; $c += 1 where $d is not 0 ($n f32).
  (func $ram_count_tile (param $c i32) (param $d i32) (param $n i32)
    (local $i i32) (local $stop i32)
    (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
        (v128.store (i32.add (local.get $c) (local.get $i))
          (f32x4.add (v128.load (i32.add (local.get $c) (local.get $i)))
            (v128.and (f32x4.splat (f32.const 1)) (f32x4.ne (v128.load (i32.add (local.get $d) (local.get $i))) (f32x4.splat (f32.const 0))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; One model's turn: merged += term, term = f(d · $boost) where c = 1, r(d / c) where c > 1, else +0;
  ;; r rounds to bf16 with $bf, else to f32.
  (func $ram_term_tile (param $merged i32) (param $d i32) (param $c i32) (param $n i32) (param $boost f32) (param $bf i32)
    (local $i i32) (local $stop i32) (local $x v128) (local $cv v128) (local $bv v128) (local $one v128) (local $q v128)
    (local.set $bv (f32x4.splat (local.get $boost)))
    (local.set $one (f32x4.splat (f32.const 1)))
    (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
        (local.set $x (v128.load (i32.add (local.get $d) (local.get $i))))
        (local.set $cv (v128.load (i32.add (local.get $c) (local.get $i))))
        (local.set $q (f32x4.div (local.get $x) (local.get $cv)))
        (if (local.get $bf) (then (local.set $q (if (result v128) (i32.eq (local.get $bf) (i32.const 2)) (then (v128.bitselect ;; $rnd_f16, inlined
            (i32x4.splat (i32.const 0x7fc00000))
            (v128.or
              (v128.bitselect
                (i32x4.splat (i32.const 0x7f800000))
                (f32x4.sub (f32x4.add (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                (i32x4.ge_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
              (v128.and (local.get $q) (i32x4.splat (i32.const 0x80000000))))
            (i32x4.gt_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))) (else (v128.bitselect (i32x4.splat (i32.const 0x7fc00000)) (v128.and (i32x4.add (i32x4.add (local.get $q) (i32x4.splat (i32.const 0x7fff))) (v128.and (i32x4.shr_u (local.get $q) (i32.const 16)) (i32x4.splat (i32.const 1)))) (i32x4.splat (i32.const 0xffff0000))) (f32x4.ne (local.get $q) (local.get $q))))))))
        (v128.store (i32.add (local.get $merged) (local.get $i))
          (f32x4.add (v128.load (i32.add (local.get $merged) (local.get $i)))
            (v128.bitselect
              (f32x4.mul (local.get $x) (local.get $bv))
              (v128.and (local.get $q) (f32x4.gt (local.get $cv) (local.get $one)))
              (f32x4.eq (local.get $cv) (local.get $one)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; $po = f($pb + $merged), $n f32, every NaN as 0x7fc00000.
  (func $ram_out_tile (param $po i32) (param $pb i32) (param $merged i32) (param $n i32)
    (local $i i32) (local $stop i32) (local $r v128)
    (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
        (local.set $r (f32x4.add (v128.load (i32.add (local.get $pb) (local.get $i))) (v128.load (i32.add (local.get $merged) (local.get $i)))))
        (v128.store (i32.add (local.get $po) (local.get $i))
          (v128.bitselect (i32x4.splat (i32.const 0x7fc00000)) (local.get $r) (f32x4.ne (local.get $r) (local.get $r))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; ram: input 0 is the base, inputs 1..count the models; the boosts are `count` f32 at $params
  ;; (ones for plain ram: f(d · 1) is d); $thr is r(epsilon). $step: bit 0, 16-bit steps (δ_j and
  ;; d / c rounded); bit 1, merged and the output rounded too (ram, not ramplus_tl); bit 2, the
  ;; rounding is to f16, else to bf16.
  (func (export "ram")
    (param $in i32) (param $seg i32) (param $count i32) (param $params i32)
    (param $start i32) (param $end i32) (param $out i32) (param $bf_in i32) (param $bf_out i32)
    (param $thr f32) (param $step i32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $j i32) (local $pb i32) (local $pd i32) (local $po i32) (local $bytes i32)
    (local $c i32) (local $merged i32) (local $rmode i32)
    (local.set $rmode (select (i32.const 2) (i32.const 1) (i32.and (local.get $step) (i32.const 4))))
    (local.set $c (call $scratch_tile (local.get $scratch) (i32.const 3)))
    (local.set $merged (call $scratch_tile (local.get $scratch) (i32.const 4)))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (call $tile_len (local.get $t) (local.get $end)))
        (local.set $bytes (i32.shl (local.get $n) (i32.const 2)))
        (local.set $pb (call $tile_in (local.get $in) (local.get $seg) (i32.const 0) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 0)))
        ;; d_j = f(x_j − base) where changed, else +0; c = how many d_j are not 0
        (memory.fill (local.get $c) (i32.const 0) (local.get $bytes))
        (local.set $j (i32.const 0))
        (block $d_done
          (loop $d
            (br_if $d_done (i32.ge_u (local.get $j) (local.get $count)))
            (local.set $pd (call $scratch_tile (local.get $scratch) (i32.add (local.get $j) (i32.const 6))))
            (call $sub_tile (local.get $pd)
              (call $tile_in (local.get $in) (local.get $seg) (i32.add (local.get $j) (i32.const 1)) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 1))
              (local.get $pb) (local.get $n))
            (if (i32.and (local.get $step) (i32.const 1)) (then (call $rnd_tile (local.get $pd) (local.get $n) (local.get $rmode))))
            (call $ram_keep_tile (local.get $pd) (local.get $n) (local.get $thr))
            (call $ram_count_tile (local.get $c) (local.get $pd) (local.get $n))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $d)))
        ;; merged = Σ term_j from +0, in order
        (memory.fill (local.get $merged) (i32.const 0) (local.get $bytes))
        (local.set $j (i32.const 0))
        (block $m_done
          (loop $m
            (br_if $m_done (i32.ge_u (local.get $j) (local.get $count)))
            (call $ram_term_tile (local.get $merged) (call $scratch_tile (local.get $scratch) (i32.add (local.get $j) (i32.const 6)))
                                 (local.get $c) (local.get $n) (f32.load (i32.add (local.get $params) (i32.shl (local.get $j) (i32.const 2))))
                                 (select (local.get $rmode) (i32.const 0) (i32.and (local.get $step) (i32.const 1))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $m)))
        (local.set $po (call $tile_out (local.get $out) (local.get $t) (local.get $bf_out) (local.get $scratch)))
        (if (i32.and (local.get $step) (i32.const 2)) (then (call $rnd_tile (local.get $merged) (local.get $n) (local.get $rmode))))
        (call $ram_out_tile (local.get $po) (local.get $pb) (local.get $merged) (local.get $n))
        (if (i32.and (local.get $step) (i32.const 2)) (then (call $rnd_tile (local.get $po) (local.get $n) (local.get $rmode))))
        (call $tile_done (local.get $out) (local.get $t) (local.get $n) (local.get $bf_out) (local.get $scratch))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; ramc: ramplus_tl's counts. Model j's changed mask m_j = |r(x_j − base)| > $thr (all ones where
  ;; changed; r rounds to bf16 with $step 1, f16 with 2, else to f32), c = Σ m_j (as integers); the thread's shared
  ;; count of model j (u32 at scratch tile 22 + 8j) adds the elements where m_j and c > 1, its unique
  ;; count (+ 4) those where m_j and c = 1.
  (func (export "ramc")
    (param $in i32) (param $seg i32) (param $count i32)
    (param $start i32) (param $end i32) (param $bf_in i32) (param $thr f32) (param $step i32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $j i32) (local $pb i32) (local $pd i32) (local $px i32) (local $c i32) (local $counts i32)
    (local $i i32) (local $stop i32) (local $tv v128) (local $m v128) (local $cv v128) (local $shared v128) (local $unique v128) (local $one v128)
    (local $x v128)
    (local.set $tv (f32x4.splat (local.get $thr)))
    (local.set $one (i32x4.splat (i32.const 1)))
    (local.set $c (call $scratch_tile (local.get $scratch) (i32.const 3)))
    (local.set $counts (call $scratch_tile (local.get $scratch) (i32.const 22)))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (call $tile_len (local.get $t) (local.get $end)))
        (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
        (local.set $pb (call $tile_in (local.get $in) (local.get $seg) (i32.const 0) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 0)))
        (memory.fill (local.get $c) (i32.const 0) (local.get $stop))
        (local.set $j (i32.const 0))
        (block $d_done
          (loop $d
            (br_if $d_done (i32.ge_u (local.get $j) (local.get $count)))
            (local.set $pd (call $scratch_tile (local.get $scratch) (i32.add (local.get $j) (i32.const 6))))
            (local.set $px (call $tile_in (local.get $in) (local.get $seg) (i32.add (local.get $j) (i32.const 1)) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 1)))
            (local.set $i (i32.const 0))
            (block $done
              (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                (local.set $x (f32x4.sub (v128.load (i32.add (local.get $px) (local.get $i))) (v128.load (i32.add (local.get $pb) (local.get $i)))))
                (if (local.get $step) (then (local.set $x (if (result v128) (i32.eq (local.get $step) (i32.const 2)) (then (v128.bitselect ;; $rnd_f16, inlined
                    (i32x4.splat (i32.const 0x7fc00000))
                    (v128.or
                      (v128.bitselect
                        (i32x4.splat (i32.const 0x7f800000))
                        (f32x4.sub (f32x4.add (v128.and (local.get $x) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $x) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $x) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                        (i32x4.ge_u (v128.and (local.get $x) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
                      (v128.and (local.get $x) (i32x4.splat (i32.const 0x80000000))))
                    (i32x4.gt_u (v128.and (local.get $x) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))) (else (v128.bitselect (i32x4.splat (i32.const 0x7fc00000)) (v128.and (i32x4.add (i32x4.add (local.get $x) (i32x4.splat (i32.const 0x7fff))) (v128.and (i32x4.shr_u (local.get $x) (i32.const 16)) (i32x4.splat (i32.const 1)))) (i32x4.splat (i32.const 0xffff0000))) (f32x4.ne (local.get $x) (local.get $x))))))))
                (local.set $m (f32x4.gt (f32x4.abs (local.get $x)) (local.get $tv)))
                (v128.store (i32.add (local.get $pd) (local.get $i)) (local.get $m))
                (v128.store (i32.add (local.get $c) (local.get $i)) (i32x4.sub (v128.load (i32.add (local.get $c) (local.get $i))) (local.get $m)))
                (local.set $i (i32.add (local.get $i) (i32.const 16)))
                (br $next)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $d)))
        (local.set $j (i32.const 0))
        (block $k_done
          (loop $k
            (br_if $k_done (i32.ge_u (local.get $j) (local.get $count)))
            (local.set $pd (call $scratch_tile (local.get $scratch) (i32.add (local.get $j) (i32.const 6))))
            (local.set $shared (i32x4.splat (i32.const 0)))
            (local.set $unique (i32x4.splat (i32.const 0)))
            (local.set $i (i32.const 0))
            (block $done
              (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
                (local.set $m (v128.load (i32.add (local.get $pd) (local.get $i))))
                (local.set $cv (v128.load (i32.add (local.get $c) (local.get $i))))
                (local.set $shared (i32x4.sub (local.get $shared) (v128.and (local.get $m) (i32x4.gt_s (local.get $cv) (local.get $one)))))
                (local.set $unique (i32x4.sub (local.get $unique) (v128.and (local.get $m) (i32x4.eq (local.get $cv) (local.get $one)))))
                (local.set $i (i32.add (local.get $i) (i32.const 16)))
                (br $next)))
            (local.set $px (i32.add (local.get $counts) (i32.shl (local.get $j) (i32.const 3))))
            (i32.store (local.get $px)
              (i32.add (i32.load (local.get $px))
                (i32.add (i32.add (i32x4.extract_lane 0 (local.get $shared)) (i32x4.extract_lane 1 (local.get $shared)))
                         (i32.add (i32x4.extract_lane 2 (local.get $shared)) (i32x4.extract_lane 3 (local.get $shared))))))
            (i32.store offset=4 (local.get $px)
              (i32.add (i32.load offset=4 (local.get $px))
                (i32.add (i32.add (i32x4.extract_lane 0 (local.get $unique)) (i32x4.extract_lane 1 (local.get $unique)))
                         (i32.add (i32x4.extract_lane 2 (local.get $unique)) (i32x4.extract_lane 3 (local.get $unique))))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $k)))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; ---- a LoRA adapter merged into its weight (lora/merge-lora.ts loraApplyF32) ----

  ;; lora: out = f(w + f(d · $scale)), d the FMA chain over k < $rank of L[o, k] · R[k, c] from +0
  ;; (PEFT's W + (B·A)·scaling: torch's sgemm adds the rank's products one FMA at a time, in order),
  ;; for the call's element e (window element 0 is $idx): row o = e / $cols, column c = e mod $cols;
  ;; a bf16 weight takes the f32 sum rounded once, as it is narrowed. L is $rows × $rank
  ;; f32 at $left, R $rank × $cols f32 at $right. $cols is a multiple of 4 and $idx of 16, so the 4
  ;; lanes of a vector share a row; padding past the call's end reads the last row.
  (func (export "lora")
    (param $in i32) (param $seg i32) (param $start i32) (param $end i32) (param $out i32)
    (param $bf_in i32) (param $bf_out i32) (param $idx i32) (param $cols i32) (param $rows i32) (param $rank i32)
    (param $left i32) (param $right i32) (param $scale f32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $pw i32) (local $po i32) (local $i i32) (local $stop i32)
    (local $e i32) (local $o i32) (local $k i32) (local $lrow i32) (local $rcol i32) (local $stride i32)
    (local $l v128) (local $rv v128) (local $acc v128) (local $c v128) (local $c2 v128)
    (local $p v128) (local $p2 v128) (local $s v128) (local $s2 v128) (local $kv v128)
    (local $low29 v128) (local $half29 v128) (local $tiny v128)
    (local.set $low29 (i64x2.splat (i64.const 0x1fffffff)))
    (local.set $half29 (i64x2.splat (i64.const 0x10000000)))
    (local.set $tiny (f64x2.splat (f64.const 0x1p-126)))
    (local.set $kv (f32x4.splat (local.get $scale)))
    (local.set $stride (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (call $tile_len (local.get $t) (local.get $end)))
        (local.set $pw (call $tile_in (local.get $in) (local.get $seg) (i32.const 0) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 0)))
        (local.set $po (call $tile_out (local.get $out) (local.get $t) (local.get $bf_out) (local.get $scratch)))
        (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
        (local.set $i (i32.const 0))
        (block $groups_done
          (loop $groups
            (br_if $groups_done (i32.ge_u (local.get $i) (local.get $stop)))
            (local.set $e (i32.add (i32.add (local.get $idx) (local.get $t)) (i32.shr_u (local.get $i) (i32.const 2))))
            (local.set $o (i32.div_u (local.get $e) (local.get $cols)))
            (local.set $rcol (i32.add (local.get $right) (i32.shl (i32.sub (local.get $e) (i32.mul (local.get $o) (local.get $cols))) (i32.const 2))))
            (if (i32.ge_u (local.get $o) (local.get $rows)) (then (local.set $o (i32.sub (local.get $rows) (i32.const 1)))))
            (local.set $lrow (i32.add (local.get $left) (i32.shl (i32.mul (local.get $o) (local.get $rank)) (i32.const 2))))
            (local.set $acc (f32x4.splat (f32.const 0)))
            (local.set $k (i32.const 0))
            (block $chain_done
              (loop $chain
                (br_if $chain_done (i32.ge_u (local.get $k) (local.get $rank)))
                (local.set $l (f64x2.splat (f64.promote_f32 (f32.load (i32.add (local.get $lrow) (i32.shl (local.get $k) (i32.const 2)))))))
                (local.set $rv (v128.load align=4 (local.get $rcol)))
                (local.set $c (f64x2.promote_low_f32x4 (local.get $acc)))
                (local.set $c2 (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $acc) (local.get $acc))))
                (local.set $p (f64x2.mul (f64x2.promote_low_f32x4 (local.get $rv)) (local.get $l)))
                (local.set $p2 (f64x2.mul (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $rv) (local.get $rv))) (local.get $l)))
                (local.set $s (f64x2.add (local.get $p) (local.get $c)))
                (local.set $s2 (f64x2.add (local.get $p2) (local.get $c2)))
                ;; As linear's fma: only a sum halfway between two f32 (or near the subnormals) needs the exact path.
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
                (local.set $acc
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
                    (f32x4.demote_f64x2_zero (local.get $s))
                    (f32x4.demote_f64x2_zero (local.get $s2))))
                (local.set $rcol (i32.add (local.get $rcol) (local.get $stride)))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $chain)))
            (local.set $acc (f32x4.mul (local.get $acc) (local.get $kv)))
            (v128.store align=4 (i32.add (local.get $po) (local.get $i))
              (f32x4.add (v128.load align=4 (i32.add (local.get $pw) (local.get $i))) (local.get $acc)))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $groups)))
        (call $tile_done (local.get $out) (local.get $t) (local.get $n) (local.get $bf_out) (local.get $scratch))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; ---- nearswap with bf16 steps (compute/reference.ts nearswapF32, step BF16) ----

  ;; nearswap_bf: nearswap with every step rounded to bf16 ($mode 1) or f16 (2) as torch rounds
  ;; (nearest even), in registers: d = r(a − b), d = max(|d|, r(1e-6)), w = clamp(r(r(1 / d) · t), 0, 1),
  ;; out = r(r(w·b) + r(r(1 − w)·a)). t is taken as f32, not rounded (torch's scalar).
  (func (export "nearswap_bf")
    (param $in i32) (param $seg i32) (param $start i32) (param $end i32) (param $out i32)
    (param $bf_in i32) (param $bf_out i32) (param $tv f32) (param $mode i32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $pa i32) (local $pb i32) (local $po i32) (local $i i32) (local $stop i32)
    (local $a v128) (local $b v128) (local $d v128) (local $w v128) (local $p v128) (local $q v128)
    (local $k v128) (local $one v128) (local $zero v128) (local $lo v128)
    (local $nan v128) (local $half v128) (local $one_i v128) (local $hi16 v128)
    (local.set $k (f32x4.splat (local.get $tv)))
    (local.set $one (f32x4.splat (f32.const 1)))
    (local.set $zero (f32x4.splat (f32.const 0)))
    (local.set $lo (i32x4.splat (select (i32.const 0x35880000) (i32.const 0x35860000) (i32.eq (local.get $mode) (i32.const 2)))))  ;; r(1e-6)
    (local.set $nan (i32x4.splat (i32.const 0x7fc00000)))
    (local.set $half (i32x4.splat (i32.const 0x7fff)))
    (local.set $one_i (i32x4.splat (i32.const 1)))
    (local.set $hi16 (i32x4.splat (i32.const 0xffff0000)))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (call $tile_len (local.get $t) (local.get $end)))
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
            (local.set $d (f32x4.sub (local.get $a) (local.get $b)))
            (local.set $d (if (result v128) (i32.eq (local.get $mode) (i32.const 2)) (then (v128.bitselect ;; $rnd_f16, inlined
                (i32x4.splat (i32.const 0x7fc00000))
                (v128.or
                  (v128.bitselect
                    (i32x4.splat (i32.const 0x7f800000))
                    (f32x4.sub (f32x4.add (v128.and (local.get $d) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $d) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $d) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                    (i32x4.ge_u (v128.and (local.get $d) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
                  (v128.and (local.get $d) (i32x4.splat (i32.const 0x80000000))))
                (i32x4.gt_u (v128.and (local.get $d) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))) (else (v128.bitselect (local.get $nan) (v128.and (i32x4.add (i32x4.add (local.get $d) (local.get $half)) (v128.and (i32x4.shr_u (local.get $d) (i32.const 16)) (local.get $one_i))) (local.get $hi16)) (f32x4.ne (local.get $d) (local.get $d))))))
            ;; max/min, not pmax/pmin: in f16 r(1 / d) overflows to ∞ where |a − b| < 2^-16, and with
            ;; t = 0 the weight is NaN, which torch's clamp keeps (so the output is NaN).
            (local.set $d (f32x4.div (local.get $one) (f32x4.pmax (f32x4.abs (local.get $d)) (local.get $lo))))
            (local.set $d (if (result v128) (i32.eq (local.get $mode) (i32.const 2)) (then (v128.bitselect ;; $rnd_f16, inlined
                (i32x4.splat (i32.const 0x7fc00000))
                (v128.or
                  (v128.bitselect
                    (i32x4.splat (i32.const 0x7f800000))
                    (f32x4.sub (f32x4.add (v128.and (local.get $d) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $d) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $d) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                    (i32x4.ge_u (v128.and (local.get $d) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
                  (v128.and (local.get $d) (i32x4.splat (i32.const 0x80000000))))
                (i32x4.gt_u (v128.and (local.get $d) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))) (else (v128.bitselect (local.get $nan) (v128.and (i32x4.add (i32x4.add (local.get $d) (local.get $half)) (v128.and (i32x4.shr_u (local.get $d) (i32.const 16)) (local.get $one_i))) (local.get $hi16)) (f32x4.ne (local.get $d) (local.get $d))))))
            (local.set $w (f32x4.mul (local.get $d) (local.get $k)))
            (local.set $w (if (result v128) (i32.eq (local.get $mode) (i32.const 2)) (then (v128.bitselect ;; $rnd_f16, inlined
                (i32x4.splat (i32.const 0x7fc00000))
                (v128.or
                  (v128.bitselect
                    (i32x4.splat (i32.const 0x7f800000))
                    (f32x4.sub (f32x4.add (v128.and (local.get $w) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $w) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $w) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                    (i32x4.ge_u (v128.and (local.get $w) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
                  (v128.and (local.get $w) (i32x4.splat (i32.const 0x80000000))))
                (i32x4.gt_u (v128.and (local.get $w) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))) (else (v128.bitselect (local.get $nan) (v128.and (i32x4.add (i32x4.add (local.get $w) (local.get $half)) (v128.and (i32x4.shr_u (local.get $w) (i32.const 16)) (local.get $one_i))) (local.get $hi16)) (f32x4.ne (local.get $w) (local.get $w))))))
            (local.set $w (f32x4.min (f32x4.max (local.get $w) (local.get $zero)) (local.get $one)))
            (local.set $p (f32x4.mul (local.get $w) (local.get $b)))
            (local.set $p (if (result v128) (i32.eq (local.get $mode) (i32.const 2)) (then (v128.bitselect ;; $rnd_f16, inlined
                (i32x4.splat (i32.const 0x7fc00000))
                (v128.or
                  (v128.bitselect
                    (i32x4.splat (i32.const 0x7f800000))
                    (f32x4.sub (f32x4.add (v128.and (local.get $p) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                    (i32x4.ge_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
                  (v128.and (local.get $p) (i32x4.splat (i32.const 0x80000000))))
                (i32x4.gt_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))) (else (v128.bitselect (local.get $nan) (v128.and (i32x4.add (i32x4.add (local.get $p) (local.get $half)) (v128.and (i32x4.shr_u (local.get $p) (i32.const 16)) (local.get $one_i))) (local.get $hi16)) (f32x4.ne (local.get $p) (local.get $p))))))
            (local.set $q (f32x4.sub (local.get $one) (local.get $w)))
            (local.set $q (if (result v128) (i32.eq (local.get $mode) (i32.const 2)) (then (v128.bitselect ;; $rnd_f16, inlined
                (i32x4.splat (i32.const 0x7fc00000))
                (v128.or
                  (v128.bitselect
                    (i32x4.splat (i32.const 0x7f800000))
                    (f32x4.sub (f32x4.add (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                    (i32x4.ge_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
                  (v128.and (local.get $q) (i32x4.splat (i32.const 0x80000000))))
                (i32x4.gt_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))) (else (v128.bitselect (local.get $nan) (v128.and (i32x4.add (i32x4.add (local.get $q) (local.get $half)) (v128.and (i32x4.shr_u (local.get $q) (i32.const 16)) (local.get $one_i))) (local.get $hi16)) (f32x4.ne (local.get $q) (local.get $q))))))
            (local.set $q (f32x4.mul (local.get $q) (local.get $a)))
            (local.set $q (if (result v128) (i32.eq (local.get $mode) (i32.const 2)) (then (v128.bitselect ;; $rnd_f16, inlined
                (i32x4.splat (i32.const 0x7fc00000))
                (v128.or
                  (v128.bitselect
                    (i32x4.splat (i32.const 0x7f800000))
                    (f32x4.sub (f32x4.add (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                    (i32x4.ge_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
                  (v128.and (local.get $q) (i32x4.splat (i32.const 0x80000000))))
                (i32x4.gt_u (v128.and (local.get $q) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))) (else (v128.bitselect (local.get $nan) (v128.and (i32x4.add (i32x4.add (local.get $q) (local.get $half)) (v128.and (i32x4.shr_u (local.get $q) (i32.const 16)) (local.get $one_i))) (local.get $hi16)) (f32x4.ne (local.get $q) (local.get $q))))))
            (local.set $p (f32x4.add (local.get $p) (local.get $q)))
            (local.set $p (if (result v128) (i32.eq (local.get $mode) (i32.const 2)) (then (v128.bitselect ;; $rnd_f16, inlined
                (i32x4.splat (i32.const 0x7fc00000))
                (v128.or
                  (v128.bitselect
                    (i32x4.splat (i32.const 0x7f800000))
                    (f32x4.sub (f32x4.add (v128.and (local.get $p) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.add (i32x4.max_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000)))) (i32x4.add (i32x4.max_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7f800000))) (i32x4.splat (i32.const 0x38800000))) (i32x4.splat (i32.const 0x06800000))))
                    (i32x4.ge_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x477ff000))))
                  (v128.and (local.get $p) (i32x4.splat (i32.const 0x80000000))))
                (i32x4.gt_u (v128.and (local.get $p) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))) (else (v128.bitselect (local.get $nan) (v128.and (i32x4.add (i32x4.add (local.get $p) (local.get $half)) (v128.and (i32x4.shr_u (local.get $p) (i32.const 16)) (local.get $one_i))) (local.get $hi16)) (f32x4.ne (local.get $p) (local.get $p))))))
            (v128.store align=4 (i32.add (local.get $po) (local.get $i)) (local.get $p))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $next)))
        (call $tile_done (local.get $out) (local.get $t) (local.get $n) (local.get $bf_out) (local.get $scratch))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))

  ;; XXH3's accumulation (doc/xxhash_spec.md of xxHash, "large inputs"), for the journal's shard
  ;; digests (execute/xxh3.ts): $n 64-byte stripes at $data into the eight u64 accumulators at $acc,
  ;; the first being stripe $s of its 1024-byte block. Stripe s of a block is keyed by the secret's
  ;; bytes from 8s; after a block's 16th, the accumulators are scrambled with its last 64 bytes.
  ;; Returns the next stripe's place in its block. Lane i of a stripe: acc[i^1] += x[i];
  ;; acc[i] += lo32(x[i] ^ key[i]) * hi32(x[i] ^ key[i]), two lanes to a vector.
  (func (export "xxh3")
    (param $acc i32) (param $data i32) (param $n i32) (param $s i32) (param $secret i32) (result i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $d v128) (local $dk v128) (local $prime v128) (local $end i32) (local $key i32)
    (local.set $prime (i64x2.splat (i64.const 0x9E3779B1)))
    (local.set $a0 (v128.load align=8 (local.get $acc)))
    (local.set $a1 (v128.load offset=16 align=8 (local.get $acc)))
    (local.set $a2 (v128.load offset=32 align=8 (local.get $acc)))
    (local.set $a3 (v128.load offset=48 align=8 (local.get $acc)))
    (local.set $end (i32.add (local.get $data) (i32.shl (local.get $n) (i32.const 6))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $data) (local.get $end)))
        (local.set $key (i32.add (local.get $secret) (i32.shl (local.get $s) (i32.const 3))))
        (local.set $d (v128.load offset=0 align=1 (local.get $data)))
        (local.set $dk (v128.xor (local.get $d) (v128.load offset=0 align=1 (local.get $key))))
        (local.set $a0 (i64x2.add (i64x2.add (local.get $a0) (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $d) (local.get $d)))
          (i64x2.extmul_low_i32x4_u
            (i8x16.shuffle 0 1 2 3 8 9 10 11 0 1 2 3 8 9 10 11 (local.get $dk) (local.get $dk))
            (i8x16.shuffle 4 5 6 7 12 13 14 15 4 5 6 7 12 13 14 15 (local.get $dk) (local.get $dk)))))
        (local.set $d (v128.load offset=16 align=1 (local.get $data)))
        (local.set $dk (v128.xor (local.get $d) (v128.load offset=16 align=1 (local.get $key))))
        (local.set $a1 (i64x2.add (i64x2.add (local.get $a1) (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $d) (local.get $d)))
          (i64x2.extmul_low_i32x4_u
            (i8x16.shuffle 0 1 2 3 8 9 10 11 0 1 2 3 8 9 10 11 (local.get $dk) (local.get $dk))
            (i8x16.shuffle 4 5 6 7 12 13 14 15 4 5 6 7 12 13 14 15 (local.get $dk) (local.get $dk)))))
        (local.set $d (v128.load offset=32 align=1 (local.get $data)))
        (local.set $dk (v128.xor (local.get $d) (v128.load offset=32 align=1 (local.get $key))))
        (local.set $a2 (i64x2.add (i64x2.add (local.get $a2) (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $d) (local.get $d)))
          (i64x2.extmul_low_i32x4_u
            (i8x16.shuffle 0 1 2 3 8 9 10 11 0 1 2 3 8 9 10 11 (local.get $dk) (local.get $dk))
            (i8x16.shuffle 4 5 6 7 12 13 14 15 4 5 6 7 12 13 14 15 (local.get $dk) (local.get $dk)))))
        (local.set $d (v128.load offset=48 align=1 (local.get $data)))
        (local.set $dk (v128.xor (local.get $d) (v128.load offset=48 align=1 (local.get $key))))
        (local.set $a3 (i64x2.add (i64x2.add (local.get $a3) (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $d) (local.get $d)))
          (i64x2.extmul_low_i32x4_u
            (i8x16.shuffle 0 1 2 3 8 9 10 11 0 1 2 3 8 9 10 11 (local.get $dk) (local.get $dk))
            (i8x16.shuffle 4 5 6 7 12 13 14 15 4 5 6 7 12 13 14 15 (local.get $dk) (local.get $dk)))))
        (local.set $data (i32.add (local.get $data) (i32.const 64)))
        (local.set $s (i32.add (local.get $s) (i32.const 1)))
        (if (i32.eq (local.get $s) (i32.const 16))
          (then
            (local.set $a0 (i64x2.mul (local.get $prime)
              (v128.xor (v128.xor (local.get $a0) (i64x2.shr_u (local.get $a0) (i32.const 47)))
                        (v128.load offset=128 align=1 (local.get $secret)))))
            (local.set $a1 (i64x2.mul (local.get $prime)
              (v128.xor (v128.xor (local.get $a1) (i64x2.shr_u (local.get $a1) (i32.const 47)))
                        (v128.load offset=144 align=1 (local.get $secret)))))
            (local.set $a2 (i64x2.mul (local.get $prime)
              (v128.xor (v128.xor (local.get $a2) (i64x2.shr_u (local.get $a2) (i32.const 47)))
                        (v128.load offset=160 align=1 (local.get $secret)))))
            (local.set $a3 (i64x2.mul (local.get $prime)
              (v128.xor (v128.xor (local.get $a3) (i64x2.shr_u (local.get $a3) (i32.const 47)))
                        (v128.load offset=176 align=1 (local.get $secret)))))
            (local.set $s (i32.const 0))))
        (br $next)))
    (v128.store align=8 (local.get $acc) (local.get $a0))
    (v128.store offset=16 align=8 (local.get $acc) (local.get $a1))
    (v128.store offset=32 align=8 (local.get $acc) (local.get $a2))
    (v128.store offset=48 align=8 (local.get $acc) (local.get $a3))
    (local.get $s))

  ;; ---- torch's order among ties (methods/torch-sort-ties.ts, SortSteps): std::sort, std::nth_element
  ;; and std::partial_sort's heap selection over i32 sort keys, step for step ----
  ;; A key ≥ 0 is its own value; a negative key is a tied element, −1 − (slot · 2³⁰ + index), whose
  ;; value is $ts_t0 (slot 0) or $ts_t1. Functions below take positions in the keys (< 2³⁰), not
  ;; addresses. The globals are each thread's own (each instantiates the module).
  (global $ts_keys (mut i32) (i32.const 0))
  (global $ts_t0 (mut i32) (i32.const 0))
  (global $ts_t1 (mut i32) (i32.const 0))
  (global $ts_b0 (mut i32) (i32.const 0))
  (global $ts_b1 (mut i32) (i32.const 0))
  ;; The partition's two blocks of 1,024 offsets (the calling thread's scratch).
  (global $ts_lo (mut i32) (i32.const 0))
  (global $ts_ro (mut i32) (i32.const 0))

  (func $ts_value (param $key i32) (result i32)
    (select (local.get $key)
      (select (global.get $ts_t0) (global.get $ts_t1)
        (i32.eqz (i32.and (i32.xor (local.get $key) (i32.const -1)) (i32.const 0x40000000))))
      (i32.ge_s (local.get $key) (i32.const 0))))

  (func $ts_addr (param $p i32) (result i32)
    (i32.add (global.get $ts_keys) (i32.shl (local.get $p) (i32.const 2))))

  (func $ts_v (param $p i32) (result i32)
    (call $ts_value (i32.load (call $ts_addr (local.get $p)))))

  (func $ts_swap (param $i i32) (param $j i32) (local $a i32) (local $b i32) (local $t i32)
    (local.set $a (call $ts_addr (local.get $i)))
    (local.set $b (call $ts_addr (local.get $j)))
    (local.set $t (i32.load (local.get $a)))
    (i32.store (local.get $a) (i32.load (local.get $b)))
    (i32.store (local.get $b) (local.get $t)))

  ;; Whether [first, last) holds a boundary strictly inside it.
  (func $ts_holds (param $first i32) (param $last i32) (result i32)
    (i32.or
      (i32.and (i32.lt_s (local.get $first) (global.get $ts_b0)) (i32.lt_s (global.get $ts_b0) (local.get $last)))
      (i32.and (i32.lt_s (local.get $first) (global.get $ts_b1)) (i32.lt_s (global.get $ts_b1) (local.get $last)))))

  (func $ts_log2 (param $n i32) (result i32)
    (i32.sub (i32.const 31) (i32.clz (local.get $n))))

  ;; std::__move_median_to_first(result, a, b, c).
  (func $ts_median_to_first (param $result i32) (param $a i32) (param $b i32) (param $c i32)
    (local $va i32) (local $vb i32) (local $vc i32) (local $chosen i32)
    (local.set $va (call $ts_v (local.get $a)))
    (local.set $vb (call $ts_v (local.get $b)))
    (local.set $vc (call $ts_v (local.get $c)))
    (if (i32.lt_s (local.get $va) (local.get $vb))
      (then
        (if (i32.lt_s (local.get $vb) (local.get $vc))
          (then (local.set $chosen (local.get $b)))
          (else (local.set $chosen (select (local.get $c) (local.get $a) (i32.lt_s (local.get $va) (local.get $vc)))))))
      (else
        (if (i32.lt_s (local.get $va) (local.get $vc))
          (then (local.set $chosen (local.get $a)))
          (else (local.set $chosen (select (local.get $c) (local.get $b) (i32.lt_s (local.get $vb) (local.get $vc))))))))
    (call $ts_swap (local.get $result) (local.get $chosen)))

  ;; std::__insertion_sort over [first, last).
  (func $ts_insertion_sort (param $first i32) (param $last i32)
    (local $i i32) (local $j i32) (local $key i32) (local $value i32)
    (local.set $i (i32.add (local.get $first) (i32.const 1)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_s (local.get $i) (local.get $last)))
        (local.set $key (i32.load (call $ts_addr (local.get $i))))
        (local.set $value (call $ts_value (local.get $key)))
        (local.set $j (local.get $i))
        (block $placed
          (loop $shift
            (br_if $placed (i32.le_s (local.get $j) (local.get $first)))
            (br_if $placed (i32.ge_s (local.get $value) (call $ts_v (i32.sub (local.get $j) (i32.const 1)))))
            (i32.store (call $ts_addr (local.get $j)) (i32.load (call $ts_addr (i32.sub (local.get $j) (i32.const 1)))))
            (local.set $j (i32.sub (local.get $j) (i32.const 1)))
            (br $shift)))
        (i32.store (call $ts_addr (local.get $j)) (local.get $key))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

  ;; std::__adjust_heap: the hole sifted down to a leaf, then $key pushed up from there.
  (func $ts_adjust_heap (param $first i32) (param $hole i32) (param $length i32) (param $key i32)
    (local $top i32) (local $child i32) (local $parent i32) (local $value i32)
    (local.set $top (local.get $hole))
    (local.set $child (local.get $hole))
    (block $down
      (loop $next
        (br_if $down (i32.ge_s (local.get $child) (i32.shr_s (i32.sub (local.get $length) (i32.const 1)) (i32.const 1))))
        (local.set $child (i32.shl (i32.add (local.get $child) (i32.const 1)) (i32.const 1)))
        (if (i32.lt_s (call $ts_v (i32.add (local.get $first) (local.get $child)))
                      (call $ts_v (i32.add (local.get $first) (i32.sub (local.get $child) (i32.const 1)))))
          (then (local.set $child (i32.sub (local.get $child) (i32.const 1)))))
        (i32.store (call $ts_addr (i32.add (local.get $first) (local.get $hole)))
          (i32.load (call $ts_addr (i32.add (local.get $first) (local.get $child)))))
        (local.set $hole (local.get $child))
        (br $next)))
    (if (i32.and (i32.eqz (i32.and (local.get $length) (i32.const 1)))
                 (i32.eq (local.get $child) (i32.shr_s (i32.sub (local.get $length) (i32.const 2)) (i32.const 1))))
      (then
        (local.set $child (i32.shl (i32.add (local.get $child) (i32.const 1)) (i32.const 1)))
        (i32.store (call $ts_addr (i32.add (local.get $first) (local.get $hole)))
          (i32.load (call $ts_addr (i32.add (local.get $first) (i32.sub (local.get $child) (i32.const 1))))))
        (local.set $hole (i32.sub (local.get $child) (i32.const 1)))))
    (local.set $value (call $ts_value (local.get $key)))
    (local.set $parent (i32.shr_s (i32.sub (local.get $hole) (i32.const 1)) (i32.const 1)))
    (block $up
      (loop $next
        (br_if $up (i32.le_s (local.get $hole) (local.get $top)))
        (br_if $up (i32.ge_s (call $ts_v (i32.add (local.get $first) (local.get $parent))) (local.get $value)))
        (i32.store (call $ts_addr (i32.add (local.get $first) (local.get $hole)))
          (i32.load (call $ts_addr (i32.add (local.get $first) (local.get $parent)))))
        (local.set $hole (local.get $parent))
        (local.set $parent (i32.shr_s (i32.sub (local.get $hole) (i32.const 1)) (i32.const 1)))
        (br $next)))
    (i32.store (call $ts_addr (i32.add (local.get $first) (local.get $hole))) (local.get $key)))

  ;; std::__make_heap over [first, last).
  (func $ts_make_heap (param $first i32) (param $last i32)
    (local $length i32) (local $parent i32)
    (local.set $length (i32.sub (local.get $last) (local.get $first)))
    (if (i32.lt_s (local.get $length) (i32.const 2)) (then (return)))
    (local.set $parent (i32.shr_s (i32.sub (local.get $length) (i32.const 2)) (i32.const 1)))
    (loop $next
      (call $ts_adjust_heap (local.get $first) (local.get $parent) (local.get $length)
        (i32.load (call $ts_addr (i32.add (local.get $first) (local.get $parent)))))
      (if (i32.eqz (local.get $parent)) (then (return)))
      (local.set $parent (i32.sub (local.get $parent) (i32.const 1)))
      (br $next)))

  ;; std::__partial_sort(first, last, last): make_heap, then sort_heap.
  (func $ts_heap_sort (param $first i32) (param $last i32)
    (local $end i32) (local $key i32)
    (call $ts_make_heap (local.get $first) (local.get $last))
    (local.set $end (i32.sub (local.get $last) (i32.const 1)))
    (block $done
      (loop $next
        (br_if $done (i32.le_s (local.get $end) (local.get $first)))
        (local.set $key (i32.load (call $ts_addr (local.get $end))))
        (i32.store (call $ts_addr (local.get $end)) (i32.load (call $ts_addr (local.get $first))))
        (call $ts_adjust_heap (local.get $first) (i32.const 0) (i32.sub (local.get $end) (local.get $first)) (local.get $key))
        (local.set $end (i32.sub (local.get $end) (i32.const 1)))
        (br $next))))

  ;; std::__heap_select: the `middle − first` first of the order in [first, middle), as a heap.
  (func $ts_heap_select (param $first i32) (param $middle i32) (param $last i32)
    (local $i i32) (local $key i32)
    (call $ts_make_heap (local.get $first) (local.get $middle))
    (local.set $i (local.get $middle))
    (block $done
      (loop $next
        (br_if $done (i32.ge_s (local.get $i) (local.get $last)))
        (if (i32.lt_s (call $ts_v (local.get $i)) (call $ts_v (local.get $first)))
          (then
            (local.set $key (i32.load (call $ts_addr (local.get $i))))
            (i32.store (call $ts_addr (local.get $i)) (i32.load (call $ts_addr (local.get $first))))
            (call $ts_adjust_heap (local.get $first) (i32.const 0) (i32.sub (local.get $middle) (local.get $first)) (local.get $key))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

  ;; The offsets of the block's elements not below the pivot (from $p up), into $offsets;
  ;; returns their count. $mode ($ts_scan_mode): 0 or 1, the keys compared as they are, signed or
  ;; unsigned (a tied key, negative, then compares as its value would); 2, tied keys' values looked up.
  (func $ts_scan_left (param $p i32) (param $offsets i32) (param $pivot i32) (param $mode i32) (result i32)
    (local $j i32) (local $key i32) (local $count i32)
    (if (i32.eq (local.get $mode) (i32.const 0))
      (then
        (loop $scan
          (local.set $key (i32.load offset=0 (local.get $p)))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 0)))
          (local.set $count (i32.add (local.get $count) (i32.ge_s (local.get $key) (local.get $pivot))))
          (local.set $key (i32.load offset=4 (local.get $p)))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 1)))
          (local.set $count (i32.add (local.get $count) (i32.ge_s (local.get $key) (local.get $pivot))))
          (local.set $key (i32.load offset=8 (local.get $p)))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 2)))
          (local.set $count (i32.add (local.get $count) (i32.ge_s (local.get $key) (local.get $pivot))))
          (local.set $key (i32.load offset=12 (local.get $p)))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 3)))
          (local.set $count (i32.add (local.get $count) (i32.ge_s (local.get $key) (local.get $pivot))))
          (local.set $p (i32.add (local.get $p) (i32.const 16)))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br_if $scan (i32.lt_u (local.get $j) (i32.const 1024))))
        (return (local.get $count))))
    (if (i32.eq (local.get $mode) (i32.const 1))
      (then
        (loop $scan
          (local.set $key (i32.load offset=0 (local.get $p)))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 0)))
          (local.set $count (i32.add (local.get $count) (i32.ge_u (local.get $key) (local.get $pivot))))
          (local.set $key (i32.load offset=4 (local.get $p)))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 1)))
          (local.set $count (i32.add (local.get $count) (i32.ge_u (local.get $key) (local.get $pivot))))
          (local.set $key (i32.load offset=8 (local.get $p)))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 2)))
          (local.set $count (i32.add (local.get $count) (i32.ge_u (local.get $key) (local.get $pivot))))
          (local.set $key (i32.load offset=12 (local.get $p)))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 3)))
          (local.set $count (i32.add (local.get $count) (i32.ge_u (local.get $key) (local.get $pivot))))
          (local.set $p (i32.add (local.get $p) (i32.const 16)))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br_if $scan (i32.lt_u (local.get $j) (i32.const 1024))))
        (return (local.get $count))))
    (if (i32.eq (local.get $mode) (i32.const 2))
      (then
        (loop $scan
          (local.set $key (i32.load offset=0 (local.get $p)))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 0)))
          (local.set $count (i32.add (local.get $count) (i32.ge_s (select (local.get $key) (select (global.get $ts_t0) (global.get $ts_t1) (i32.eqz (i32.and (i32.xor (local.get $key) (i32.const -1)) (i32.const 0x40000000)))) (i32.ge_s (local.get $key) (i32.const 0))) (local.get $pivot))))
          (local.set $key (i32.load offset=4 (local.get $p)))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 1)))
          (local.set $count (i32.add (local.get $count) (i32.ge_s (select (local.get $key) (select (global.get $ts_t0) (global.get $ts_t1) (i32.eqz (i32.and (i32.xor (local.get $key) (i32.const -1)) (i32.const 0x40000000)))) (i32.ge_s (local.get $key) (i32.const 0))) (local.get $pivot))))
          (local.set $key (i32.load offset=8 (local.get $p)))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 2)))
          (local.set $count (i32.add (local.get $count) (i32.ge_s (select (local.get $key) (select (global.get $ts_t0) (global.get $ts_t1) (i32.eqz (i32.and (i32.xor (local.get $key) (i32.const -1)) (i32.const 0x40000000)))) (i32.ge_s (local.get $key) (i32.const 0))) (local.get $pivot))))
          (local.set $key (i32.load offset=12 (local.get $p)))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 3)))
          (local.set $count (i32.add (local.get $count) (i32.ge_s (select (local.get $key) (select (global.get $ts_t0) (global.get $ts_t1) (i32.eqz (i32.and (i32.xor (local.get $key) (i32.const -1)) (i32.const 0x40000000)))) (i32.ge_s (local.get $key) (i32.const 0))) (local.get $pivot))))
          (local.set $p (i32.add (local.get $p) (i32.const 16)))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br_if $scan (i32.lt_u (local.get $j) (i32.const 1024))))
        (return (local.get $count))))
    (unreachable))

  ;; The offsets of the block's elements not above the pivot (from $p down), into $offsets;
  ;; returns their count. $mode ($ts_scan_mode): 0 or 1, the keys compared as they are, signed or
  ;; unsigned (a tied key, negative, then compares as its value would); 2, tied keys' values looked up.
  (func $ts_scan_right (param $p i32) (param $offsets i32) (param $pivot i32) (param $mode i32) (result i32)
    (local $j i32) (local $key i32) (local $count i32)
    (if (i32.eq (local.get $mode) (i32.const 0))
      (then
        (loop $scan
          (local.set $key (i32.load offset=0 (local.get $p)))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 0)))
          (local.set $count (i32.add (local.get $count) (i32.le_s (local.get $key) (local.get $pivot))))
          (local.set $key (i32.load (i32.sub (local.get $p) (i32.const 4))))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 1)))
          (local.set $count (i32.add (local.get $count) (i32.le_s (local.get $key) (local.get $pivot))))
          (local.set $key (i32.load (i32.sub (local.get $p) (i32.const 8))))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 2)))
          (local.set $count (i32.add (local.get $count) (i32.le_s (local.get $key) (local.get $pivot))))
          (local.set $key (i32.load (i32.sub (local.get $p) (i32.const 12))))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 3)))
          (local.set $count (i32.add (local.get $count) (i32.le_s (local.get $key) (local.get $pivot))))
          (local.set $p (i32.add (local.get $p) (i32.const -16)))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br_if $scan (i32.lt_u (local.get $j) (i32.const 1024))))
        (return (local.get $count))))
    (if (i32.eq (local.get $mode) (i32.const 1))
      (then
        (loop $scan
          (local.set $key (i32.load offset=0 (local.get $p)))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 0)))
          (local.set $count (i32.add (local.get $count) (i32.le_u (local.get $key) (local.get $pivot))))
          (local.set $key (i32.load (i32.sub (local.get $p) (i32.const 4))))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 1)))
          (local.set $count (i32.add (local.get $count) (i32.le_u (local.get $key) (local.get $pivot))))
          (local.set $key (i32.load (i32.sub (local.get $p) (i32.const 8))))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 2)))
          (local.set $count (i32.add (local.get $count) (i32.le_u (local.get $key) (local.get $pivot))))
          (local.set $key (i32.load (i32.sub (local.get $p) (i32.const 12))))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 3)))
          (local.set $count (i32.add (local.get $count) (i32.le_u (local.get $key) (local.get $pivot))))
          (local.set $p (i32.add (local.get $p) (i32.const -16)))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br_if $scan (i32.lt_u (local.get $j) (i32.const 1024))))
        (return (local.get $count))))
    (if (i32.eq (local.get $mode) (i32.const 2))
      (then
        (loop $scan
          (local.set $key (i32.load offset=0 (local.get $p)))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 0)))
          (local.set $count (i32.add (local.get $count) (i32.le_s (select (local.get $key) (select (global.get $ts_t0) (global.get $ts_t1) (i32.eqz (i32.and (i32.xor (local.get $key) (i32.const -1)) (i32.const 0x40000000)))) (i32.ge_s (local.get $key) (i32.const 0))) (local.get $pivot))))
          (local.set $key (i32.load (i32.sub (local.get $p) (i32.const 4))))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 1)))
          (local.set $count (i32.add (local.get $count) (i32.le_s (select (local.get $key) (select (global.get $ts_t0) (global.get $ts_t1) (i32.eqz (i32.and (i32.xor (local.get $key) (i32.const -1)) (i32.const 0x40000000)))) (i32.ge_s (local.get $key) (i32.const 0))) (local.get $pivot))))
          (local.set $key (i32.load (i32.sub (local.get $p) (i32.const 8))))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 2)))
          (local.set $count (i32.add (local.get $count) (i32.le_s (select (local.get $key) (select (global.get $ts_t0) (global.get $ts_t1) (i32.eqz (i32.and (i32.xor (local.get $key) (i32.const -1)) (i32.const 0x40000000)))) (i32.ge_s (local.get $key) (i32.const 0))) (local.get $pivot))))
          (local.set $key (i32.load (i32.sub (local.get $p) (i32.const 12))))
          (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2))) (i32.add (local.get $j) (i32.const 3)))
          (local.set $count (i32.add (local.get $count) (i32.le_s (select (local.get $key) (select (global.get $ts_t0) (global.get $ts_t1) (i32.eqz (i32.and (i32.xor (local.get $key) (i32.const -1)) (i32.const 0x40000000)))) (i32.ge_s (local.get $key) (i32.const 0))) (local.get $pivot))))
          (local.set $p (i32.add (local.get $p) (i32.const -16)))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br_if $scan (i32.lt_u (local.get $j) (i32.const 1024))))
        (return (local.get $count))))
    (unreachable))

  ;; How a block's scan compares keys with $pivot: a tied key's value, $ts_t0 or $ts_t1, is not
  ;; needed where both fall on the same side of the test (v ≥ pivot on the left, $left set; v ≤ pivot
  ;; on the right): a negative key is below the pivot signed and above it unsigned.
  (func $ts_scan_mode (param $pivot i32) (param $left i32) (result i32)
    (local $c0 i32) (local $c1 i32)
    (if (local.get $left)
      (then
        (local.set $c0 (i32.ge_s (global.get $ts_t0) (local.get $pivot)))
        (local.set $c1 (i32.ge_s (global.get $ts_t1) (local.get $pivot))))
      (else
        (local.set $c0 (i32.le_s (global.get $ts_t0) (local.get $pivot)))
        (local.set $c1 (i32.le_s (global.get $ts_t1) (local.get $pivot)))))
    (if (i32.ne (local.get $c0) (local.get $c1)) (then (return (i32.const 2))))
    ;; Left, c = 1: unsigned (1); right, c = 1: signed (0).
    (select (local.get $c0) (i32.eqz (local.get $c0)) (local.get $left)))

  ;; std::__unguarded_partition_pivot: the median of three moved to $first, then Hoare's partition.
  ;; Blocks of 1,024 from both ends find the elements to swap without a branch on each (as
  ;; BlockQuicksort does; it pairs them as Hoare's loop would); the middle, once shorter than two
  ;; blocks, goes element by element. Returns the cut.
  (func $ts_partition (param $first i32) (param $last i32) (result i32)
    (local $pivot i32) (local $left i32) (local $right i32) (local $lc i32) (local $rc i32) (local $la i32) (local $ra i32)
    (local $pairs i32) (local $k i32) (local $a i32) (local $b i32) (local $t i32)
    (local $lmode i32) (local $rmode i32) (local $lo i32) (local $ro i32) (local $pl i32) (local $pr i32)
    (call $ts_median_to_first (local.get $first) (i32.add (local.get $first) (i32.const 1))
      (i32.add (local.get $first) (i32.shr_s (i32.sub (local.get $last) (local.get $first)) (i32.const 1)))
      (i32.sub (local.get $last) (i32.const 1)))
    (local.set $pivot (call $ts_v (local.get $first)))
    (local.set $lmode (call $ts_scan_mode (local.get $pivot) (i32.const 1)))
    (local.set $rmode (call $ts_scan_mode (local.get $pivot) (i32.const 0)))
    (local.set $lo (global.get $ts_lo))
    (local.set $ro (global.get $ts_ro))
    (local.set $left (i32.add (local.get $first) (i32.const 1)))
    (local.set $right (i32.sub (local.get $last) (i32.const 1)))
    (block $blocks_done
      (loop $blocks
        (br_if $blocks_done (i32.le_s (i32.add (i32.sub (local.get $right) (local.get $left)) (i32.const 1)) (i32.const 2048)))
        (if (i32.eqz (local.get $lc))
          (then
            (local.set $la (i32.const 0))
            (local.set $lc (call $ts_scan_left (call $ts_addr (local.get $left)) (local.get $lo) (local.get $pivot) (local.get $lmode)))))
        (if (i32.eqz (local.get $rc))
          (then
            (local.set $ra (i32.const 0))
            (local.set $rc (call $ts_scan_right (call $ts_addr (local.get $right)) (local.get $ro) (local.get $pivot) (local.get $rmode)))))
        (local.set $pairs (select (local.get $lc) (local.get $rc) (i32.lt_u (local.get $lc) (local.get $rc))))
        (local.set $pl (call $ts_addr (local.get $left)))
        (local.set $pr (call $ts_addr (local.get $right)))
        (local.set $k (i32.const 0))
        (block $swapped
          (loop $swap
            (br_if $swapped (i32.ge_u (local.get $k) (local.get $pairs)))
            (local.set $a (i32.add (local.get $pl)
              (i32.shl (i32.load (i32.add (local.get $lo) (i32.shl (i32.add (local.get $la) (local.get $k)) (i32.const 2)))) (i32.const 2))))
            (local.set $b (i32.sub (local.get $pr)
              (i32.shl (i32.load (i32.add (local.get $ro) (i32.shl (i32.add (local.get $ra) (local.get $k)) (i32.const 2)))) (i32.const 2))))
            (local.set $t (i32.load (local.get $a)))
            (i32.store (local.get $a) (i32.load (local.get $b)))
            (i32.store (local.get $b) (local.get $t))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $swap)))
        (local.set $lc (i32.sub (local.get $lc) (local.get $pairs)))
        (local.set $rc (i32.sub (local.get $rc) (local.get $pairs)))
        (local.set $la (i32.add (local.get $la) (local.get $pairs)))
        (local.set $ra (i32.add (local.get $ra) (local.get $pairs)))
        (if (i32.eqz (local.get $lc)) (then (local.set $left (i32.add (local.get $left) (i32.const 1024)))))
        (if (i32.eqz (local.get $rc)) (then (local.set $right (i32.sub (local.get $right) (i32.const 1024)))))
        (br $blocks)))
    ;; Hoare's loop from where the blocks stopped: at the next element each side would stop at.
    (local.set $a (select
      (i32.add (local.get $left) (i32.load (i32.add (local.get $lo) (i32.shl (local.get $la) (i32.const 2)))))
      (local.get $left) (i32.gt_s (local.get $lc) (i32.const 0))))
    (local.set $b (i32.add (i32.const 1) (select
      (i32.sub (local.get $right) (i32.load (i32.add (local.get $ro) (i32.shl (local.get $ra) (i32.const 2)))))
      (local.get $right) (i32.gt_s (local.get $rc) (i32.const 0)))))
    (loop $hoare
      (block $stop (loop $up
        (br_if $stop (i32.ge_s (call $ts_v (local.get $a)) (local.get $pivot)))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (br $up)))
      (local.set $b (i32.sub (local.get $b) (i32.const 1)))
      (block $stop (loop $down
        (br_if $stop (i32.ge_s (local.get $pivot) (call $ts_v (local.get $b))))
        (local.set $b (i32.sub (local.get $b) (i32.const 1)))
        (br $down)))
      (if (i32.ge_s (local.get $a) (local.get $b)) (then (return (local.get $a))))
      (call $ts_swap (local.get $a) (local.get $b))
      (local.set $a (i32.add (local.get $a) (i32.const 1)))
      (br $hoare))
    (unreachable))

  ;; std::__introsort_loop, carried out only inside runs that hold a boundary; then the final
  ;; insertion sort of the runs of at most 16 that do.
  (func $ts_introsort (param $first i32) (param $last i32) (param $depth i32)
    (local $cut i32)
    (block $small
      (loop $next
        (br_if $small (i32.le_s (i32.sub (local.get $last) (local.get $first)) (i32.const 16)))
        (if (i32.eqz (call $ts_holds (local.get $first) (local.get $last))) (then (return)))
        (if (i32.eqz (local.get $depth))
          (then
            (call $ts_heap_sort (local.get $first) (local.get $last))
            (return)))
        (local.set $depth (i32.sub (local.get $depth) (i32.const 1)))
        (local.set $cut (call $ts_partition (local.get $first) (local.get $last)))
        (call $ts_introsort (local.get $cut) (local.get $last) (local.get $depth))
        (local.set $last (local.get $cut))
        (br $next)))
    (if (call $ts_holds (local.get $first) (local.get $last))
      (then (call $ts_insertion_sort (local.get $first) (local.get $last)))))

  ;; The tied keys' elements in positions [from, to) as a bitset over the tensor at $kept ($n
  ;; elements; bit i & 7 of byte i >> 3: element i), cleared first. Four keys at a time are passed
  ;; over where none is tied (negative).
  (func $ts_kept (param $from i32) (param $to i32) (param $kept i32) (param $n i32)
    (local $p i32) (local $end i32) (local $key i32) (local $index i32) (local $at i32)
    (memory.fill (local.get $kept) (i32.const 0) (i32.shr_u (i32.add (local.get $n) (i32.const 7)) (i32.const 3)))
    (local.set $p (local.get $from))
    (block $done
      (loop $next
        (br_if $done (i32.ge_s (local.get $p) (local.get $to)))
        (if (i32.le_s (i32.add (local.get $p) (i32.const 4)) (local.get $to))
          (then
            (if (i32.eqz (i32x4.bitmask (v128.load align=4 (call $ts_addr (local.get $p)))))
              (then
                (local.set $p (i32.add (local.get $p) (i32.const 4)))
                (br $next)))))
        (local.set $end (select (i32.add (local.get $p) (i32.const 4)) (local.get $to) (i32.lt_s (i32.add (local.get $p) (i32.const 4)) (local.get $to))))
        (loop $each
          (local.set $key (i32.load (call $ts_addr (local.get $p))))
          (if (i32.lt_s (local.get $key) (i32.const 0))
            (then
              (local.set $index (i32.and (i32.xor (local.get $key) (i32.const -1)) (i32.const 0x3fffffff)))
              (local.set $at (i32.add (local.get $kept) (i32.shr_u (local.get $index) (i32.const 3))))
              (i32.store8 (local.get $at)
                (i32.or (i32.load8_u (local.get $at)) (i32.shl (i32.const 1) (i32.and (local.get $index) (i32.const 7)))))))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br_if $each (i32.lt_s (local.get $p) (local.get $end))))
        (br $next))))

  (func $ts_setup (param $keys i32) (param $t0 i32) (param $t1 i32) (param $b0 i32) (param $b1 i32) (param $scratch i32)
    (global.set $ts_keys (local.get $keys))
    (global.set $ts_t0 (local.get $t0))
    (global.set $ts_t1 (local.get $t1))
    (global.set $ts_b0 (local.get $b0))
    (global.set $ts_b1 (local.get $b1))
    (global.set $ts_lo (local.get $scratch))
    (global.set $ts_ro (i32.add (local.get $scratch) (i32.const 4096))))

  ;; tsort: std::sort's steps over the $n keys at $keys, inside the runs holding boundary $b0 or
  ;; $b1; $t0 and $t1 the values of the two slots of tied keys; then the tied elements it placed in
  ;; [b0, b1) as a bitset at $kept ($ts_kept). $scratch: 8 KiB of the thread's.
  (func (export "tsort") (param $keys i32) (param $n i32) (param $t0 i32) (param $t1 i32) (param $b0 i32) (param $b1 i32) (param $kept i32) (param $scratch i32)
    (call $ts_setup (local.get $keys) (local.get $t0) (local.get $t1) (local.get $b0) (local.get $b1) (local.get $scratch))
    (if (i32.gt_s (local.get $n) (i32.const 1))
      (then (call $ts_introsort (i32.const 0) (local.get $n) (i32.shl (call $ts_log2 (local.get $n)) (i32.const 1)))))
    (call $ts_kept (local.get $b0) (local.get $b1) (local.get $kept) (local.get $n)))

  ;; tselect: torch.topk's steps for the $k first of the order (std::partial_sort's heap selection
  ;; where k · 64 ≤ n, else std::nth_element, std::__introselect, at k − 1), then the tied elements
  ;; kept among them as a bitset at $kept.
  (func (export "tselect") (param $keys i32) (param $n i32) (param $t0 i32) (param $t1 i32) (param $k i32) (param $kept i32) (param $scratch i32)
    (call $ts_setup (local.get $keys) (local.get $t0) (local.get $t1) (local.get $k) (local.get $k) (local.get $scratch))
    (call $ts_select (local.get $n) (local.get $k))
    (call $ts_kept (i32.const 0) (select (local.get $k) (i32.const 0) (i32.gt_s (local.get $k) (i32.const 0))) (local.get $kept) (local.get $n)))

  (func $ts_select (param $n i32) (param $k i32)
    (local $first i32) (local $last i32) (local $nth i32) (local $depth i32) (local $cut i32)
    (if (i32.le_s (local.get $k) (i32.const 0)) (then (return)))
    (if (i32.le_s (local.get $k) (i32.shr_s (local.get $n) (i32.const 6)))
      (then
        (call $ts_heap_select (i32.const 0) (local.get $k) (local.get $n))
        (return)))
    (local.set $nth (i32.sub (local.get $k) (i32.const 1)))
    (local.set $last (local.get $n))
    (if (i32.eq (local.get $nth) (local.get $last)) (then (return)))
    (local.set $depth (i32.shl (call $ts_log2 (local.get $n)) (i32.const 1)))
    (block $small
      (loop $next
        (br_if $small (i32.le_s (i32.sub (local.get $last) (local.get $first)) (i32.const 3)))
        (if (i32.eqz (local.get $depth))
          (then
            (call $ts_heap_select (local.get $first) (i32.add (local.get $nth) (i32.const 1)) (local.get $last))
            (call $ts_swap (local.get $first) (local.get $nth))
            (return)))
        (local.set $depth (i32.sub (local.get $depth) (i32.const 1)))
        (local.set $cut (call $ts_partition (local.get $first) (local.get $last)))
        (if (i32.le_s (local.get $cut) (local.get $nth))
          (then (local.set $first (local.get $cut)))
          (else (local.set $last (local.get $cut))))
        (br $next)))
    (call $ts_insertion_sort (local.get $first) (local.get $last)))

  ;; tkeys: SortKeys.setDeltas's keys of δ = r(x − base) (input 0 the base, 1 the model; $step 0 f32,
  ;; 1 bf16, 2 f16) into the i32 output: |δ|'s bits (every NaN 0x7fc00000) xor $flip (0x7fffffff for
  ;; a descending sort, else 0), or where they are $t0 (first) or $t1, ~(slot · 2³⁰ + index) with
  ;; index = $idx + the window index.
  (func (export "tkeys")
    (param $in i32) (param $seg i32) (param $start i32) (param $end i32) (param $out i32) (param $bf_in i32)
    (param $t0 i32) (param $t1 i32) (param $flip i32) (param $idx i32) (param $step i32) (param $scratch i32)
    (local $t i32) (local $n i32) (local $pb i32) (local $pd i32) (local $po i32) (local $i i32) (local $stop i32)
    (local $v v128) (local $index v128)
    (local.set $pd (call $scratch_tile (local.get $scratch) (i32.const 3)))
    (local.set $t (local.get $start))
    (block $tiles_done
      (loop $tiles
        (br_if $tiles_done (i32.ge_u (local.get $t) (local.get $end)))
        (local.set $n (call $tile_len (local.get $t) (local.get $end)))
        (local.set $pb (call $tile_in (local.get $in) (local.get $seg) (i32.const 0) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 0)))
        (call $sub_tile (local.get $pd)
          (call $tile_in (local.get $in) (local.get $seg) (i32.const 1) (local.get $t) (local.get $n) (local.get $bf_in) (local.get $scratch) (i32.const 1))
          (local.get $pb) (local.get $n))
        (if (local.get $step) (then (call $rnd_tile (local.get $pd) (local.get $n) (local.get $step))))
        (call $abs_bits_tile (local.get $pd) (local.get $n))
        (local.set $po (i32.add (local.get $out) (i32.shl (local.get $t) (i32.const 2))))
        (local.set $index (i32x4.add (i32x4.splat (i32.add (local.get $idx) (local.get $t))) (v128.const i32x4 0 1 2 3)))
        (local.set $stop (i32.shl (local.get $n) (i32.const 2)))
        (local.set $i (i32.const 0))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
            (local.set $v (v128.load (i32.add (local.get $pd) (local.get $i))))
            (v128.store (i32.add (local.get $po) (local.get $i))
              (v128.bitselect
                (v128.not (local.get $index))
                (v128.bitselect
                  (v128.not (v128.or (local.get $index) (i32x4.splat (i32.const 0x40000000))))
                  (v128.xor (local.get $v) (i32x4.splat (local.get $flip)))
                  (i32x4.eq (local.get $v) (i32x4.splat (local.get $t1))))
                (i32x4.eq (local.get $v) (i32x4.splat (local.get $t0)))))
            (local.set $index (i32x4.add (local.get $index) (i32x4.splat (i32.const 4))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $next)))
        (local.set $t (i32.add (local.get $t) (local.get $n)))
        (br $tiles))))
)
