"""What check_reference.py prints: the line of each case with its errors,
time and verdict (and the notes check_compare.check_case left), and at the
end the coverage of the cases run (regimes, assigners, box losses, layouts,
strides, box kinds, precisions, ...), the statistics check_case gathered
(assignment agreement and its ties, dynamic_k, second opinions) and the
worst errors, overall and per box loss. A Tally holds the counts from the
first case to the summary.
"""

import collections
import math
import sys

from check_cases import cost_constants_name, describe
from check_compare import GRAD_TOL, LOSS_TOL


class Tally:
    """The counts of one run: `stats` is the Counter check_case adds to."""

    def __init__(self):
        self.stats = collections.Counter()
        self.stats["k_hist"] = collections.Counter()
        self.stats["worst_pred_iou"] = 0.0
        self.cover = collections.defaultdict(collections.Counter)
        self.n_pass = self.n_fail = 0
        self.worst_l = self.worst_g = self.worst_l_eff = self.worst_g_eff = 0.0
        self.failed = []
        self.per_loss = {}  # iou_loss -> [passed, failed, worst loss error, worst gradient error]
        self.shapes_seen = dict(B=[], C=[], gts=[])

    def add_case(self, case):
        """Counts what the case covers, before it runs."""
        cover = self.cover
        for key in ("regime", "assigner", "iou_loss", "layout", "pmode"):
            cover[key][case[key]] += 1
        cover["l1"]["on" if case["use_l1"] else "off"] += 1
        cover["precision"][case.get("precision", "float32")] += 1
        cover["upstream"]["total" if case["upstream"] == (1.0, 0.0, 0.0, 0.0, 0.0) else "random mix"] += 1
        cover["strides"][str(tuple(case["strides"]))] += 1
        cover["weights"]["default" if case["weights"] == (5.0, 1.0, 1.0, 1.0) else "random"] += 1
        cover["box kinds"].update(case["kinds"])
        cover["img"]["%dx%d" % (case["img"][1], case["img"][0])] += 1
        cover["costs"][cost_constants_name(case)] += 1
        self.shapes_seen["B"].append(case["B"])
        self.shapes_seen["C"].append(case["C"])
        self.shapes_seen["gts"].extend(case["counts"])
        self.stats["empty_images"] += sum(1 for n in case["counts"] if n == 0)

    def add_result(self, i, case, res):
        """Counts case i's verdict res (check_case's dict) and prints its line."""
        if res["ok"]:
            self.n_pass += 1
        else:
            self.n_fail += 1
            self.failed.append(i)
        if math.isfinite(res["lerr"]):
            self.worst_l = max(self.worst_l, res["lerr"])
        if math.isfinite(res["gerr"]):
            self.worst_g = max(self.worst_g, res["gerr"])
        if res["ok"]:
            self.worst_l_eff = max(self.worst_l_eff, res.get("lerr_eff", res["lerr"]))
            self.worst_g_eff = max(self.worst_g_eff, res.get("gerr_eff", res["gerr"]))
        per = self.per_loss.setdefault(case["iou_loss"], [0, 0, 0.0, 0.0])
        per[0 if res["ok"] else 1] += 1
        if math.isfinite(res["lerr"]):
            per[2] = max(per[2], res["lerr"])
        if math.isfinite(res["gerr"]):
            per[3] = max(per[3], res["gerr"])
        print("case %3d: %-78s loss %.2e grad %.2e/%.2e %5.2fs %s" % (
            i, describe(case), res["lerr"], res["gerr"] * res["maxg"] if math.isfinite(res["gerr"]) else res["gerr"],
            res["maxg"], res["secs"], ("ok" + res.get("via", "")) if res["ok"] else "FAIL"))
        for note in res["notes"]:
            print("          " + note)
        sys.stdout.flush()

    def print_summary(self, n_cases, elapsed, ref_name):
        """The coverage and results sections, up to the list of failed cases
        (the last line, "N passed, M failed", is the caller's)."""
        stats, cover = self.stats, self.cover
        print("\n=== coverage ===")
        for key in ("regime", "assigner", "iou_loss", "l1", "layout", "pmode", "strides", "weights", "upstream",
                    "box kinds", "img", "costs", "precision"):
            print("%-10s %s" % (key + ":", ", ".join("%s %d" % kv for kv in sorted(cover[key].items()))))
        gts = self.shapes_seen["gts"]
        print("images per case: %d..%d; classes: %d..%d; boxes per image: %d..%d (%d empty images)" % (
            min(self.shapes_seen["B"]), max(self.shapes_seen["B"]), min(self.shapes_seen["C"]),
            max(self.shapes_seen["C"]), min(gts), max(gts), stats["empty_images"]))
        kh = stats["k_hist"]
        print("dynamic_k histogram: %s" % ", ".join("%d:%d" % kv for kv in sorted(kh.items())))
        print("anchors taken by several gts: %d (of which given to a gt that had not selected them: %d); "
              "images with no candidate anchor: %d" % (stats["conflicts"], stats["conflict_third_gt"],
                                                       stats["no_cand_images"]))
        print("\n=== results ===")
        print("cases run: %d in %.1f s" % (n_cases, elapsed))
        print("assignment: %d / %d anchors agree (%.6f%%); images with differences explained by exact "
              "ties: %d (%d anchors), by float32-rounding ties: %d (%d anchors); unexplained: %d images" % (
                  stats["anchors_agree"], stats["anchors_total"],
                  100.0 * stats["anchors_agree"] / max(stats["anchors_total"], 1),
                  stats["tie_exact_images"], stats["tie_exact_anchors"], stats["tie_round_images"],
                  stats["tie_round_anchors"], stats["unexplained_images"]))
        if stats["k_images_checked"]:
            print("dynamic_k: identical in %d / %d images with gts (%d gts differ; in passing cases "
                  "only where the top-IoU sum is within float32 rounding of an integer)" % (
                      stats["k_images_equal"], stats["k_images_checked"], stats["k_diff_gts"]))
        print("pred_iou on agreeing fg anchors: worst |lib - ref| = %.3g" % stats["worst_pred_iou"])
        print("float16/bfloat16 cases equal to the library's float32 run on the same values (losses bitwise, "
              "gradients rounded with torch's .to): %d / %d" % (stats["exact_16_bit_ok"],
                                                               stats["exact_16_bit_cases"]))
        print("cases whose losses were compared on the library's assignment (ties): %d; "
              "loss comparison skipped (assignment failure): %d" % (stats["forced_cases"], stats["loss_skipped"]))
        print("worst loss error (rel, scale max(|ref|, 0.1)) vs the float32 %s reference: %.3g "
              "(tol %.0e); in passing cases after the second opinions below: %.3g"
              % (ref_name, self.worst_l, LOSS_TOL, self.worst_l_eff))
        print("worst gradient error / max |grad| vs the float32 %s reference: %.3g (tol %.0e); "
              "in passing cases after the second opinions below: %.3g"
              % (ref_name, self.worst_g, GRAD_TOL, self.worst_g_eff))
        print("cases passing only against the reference evaluated with libm's expf/logf (torch's "
              "float32 exp/log differ by 1 ulp at a kink): losses %d, gradients %d; with correctly "
              "rounded exp/log: losses %d, gradients %d; only against float64: losses %d, gradients %d"
              % (stats["loss_ok_vs_libm"], stats["grad_ok_vs_libm"], stats["loss_ok_vs_correct"],
                 stats["grad_ok_vs_correct"], stats["loss_ok_vs_f64"], stats["grad_ok_vs_f64"]))
        print("per box loss, against the float32 reference (before second opinions): worst loss "
              "error (rel), worst gradient error / max |grad|:")
        for name in sorted(self.per_loss):
            ok, bad, wl, wg = self.per_loss[name]
            print("  %-10s %3d cases (%d failed): loss %.3g, gradient %.3g" % (name, ok + bad, bad, wl, wg))
        if self.failed:
            print("failed cases: %s" % " ".join(str(i) for i in self.failed))
