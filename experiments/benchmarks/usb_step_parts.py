"""USB's training step split into the parts of `step_parts.py`: run with USB's virtualenv.

    /tmp/peers/usbvenv/bin/python experiments/benchmarks/usb_step_parts.py --parts-out /tmp/usb_parts.json \
        [--profile-step 5] [--harness ../shared/peer_usb] -- <run_usb.py arguments>

`../shared/peer_usb/run_usb.py` runs USB's own loop (its source unmodified); this wraps, on the
instances of that run, the model's forward, torch.autograd.backward, optimizer.step,
scheduler.step, the EMAHook and ema.apply_shadow/restore, and brackets each step with USB hooks.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def own_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts-out", required=True)
    parser.add_argument("--profile-step", type=int, default=5)
    parser.add_argument("--skip", type=int, default=3)
    parser.add_argument("--harness", default=os.path.join(HERE, "..", "..", "..", "shared", "peer_usb"))
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    ours, theirs = parser.parse_args(argv[:split]), argv[split + 1 :]
    return ours, theirs


def main() -> None:
    ours, theirs = own_arguments()
    sys.argv = [sys.argv[0]] + theirs
    sys.path.insert(0, os.path.abspath(ours.harness))
    sys.path.insert(0, HERE)
    import run_usb  # parses `theirs`, sets threads, imports semilearn
    from step_parts import PartClock

    clock = PartClock(ours.profile_step)
    build = run_usb.get_algorithm

    def build_timed(*args, **kwargs):
        algorithm = build(*args, **kwargs)
        # Before run_usb.py wraps them on the instance; their forwards are not counted (outermost call only).
        clock.wrap_method(algorithm, "evaluate", "excluded")
        clock.wrap_method(algorithm, "save_model", "excluded")

        class Begin(run_usb.Hook):
            def before_run(self, alg):
                clock.wrap_method(alg.model, "forward", "forward")
                clock.patch_backward()
                clock.wrap_optimizer(alg.optimizer)
                if alg.scheduler is not None:
                    clock.wrap_method(alg.scheduler, "step", "scheduler")
                if getattr(alg, "ema", None) is not None:  # made by EMAHook.before_run, which runs first
                    clock.wrap_method(alg.ema, "apply_shadow", "ema")
                    clock.wrap_method(alg.ema, "restore", "ema")
                clock.start_run()

            def before_train_step(self, alg):
                clock.begin_step()

        class End(run_usb.Hook):
            def after_train_step(self, alg):
                clock.end_step()

        ema_hook = algorithm.hooks_dict.get("EMAHook")
        if ema_hook is not None:
            ema_hook.after_train_step = clock.timed(ema_hook.after_train_step, "ema")
        algorithm.register_hook(Begin(), "PartsBegin", "LOWEST")
        algorithm.register_hook(End(), "PartsEnd", "LOWEST")
        return algorithm

    run_usb.get_algorithm = build_timed
    run_usb.main(run_usb.ARGS)
    result = {"library": "usb", "algorithm": run_usb.ARGS.algorithm, "torch_threads": run_usb.torch.get_num_threads(),
              **clock.summary(ours.skip), "rows": clock.rows}
    with open(ours.parts_out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
