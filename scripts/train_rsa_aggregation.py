"""Aggregation-aware training of the embedded model at CPU scale (RSA paper, arXiv 2509.26626, Sec. on
aggregation-aware RL): train on aggregation prompts built from K candidates sampled from the reference
(base) model, with the ordinary verifiable reward on the aggregated answer.

Stages (each labelled in the output):
1. Data: training problems of the notebook's default task (``workbench.rsa.Config()``), from another
   generator seed and with every question of the notebook's evaluation problems removed (small
   generated tasks repeat questions across seeds: one-digit sums have ~200); ``pool`` candidates per
   problem sampled from the base model in one batched call; aggregation prompts of K candidates drawn
   like RSA's sets. Sampling uses the notebook's structured outputs (reason-then-answer) unless
   ``--structured off``.
2. Supervised warm start (labelled; optional, ``--sft-steps 0`` disables it): cross-entropy on a
   templated correct aggregation built from the gold answer ("... the correct result is X.
   <answer>X</answer>"). This teaches the answer format and to commit to one answer; it is not RL.
3. RLOO policy gradient (as in the paper: rollout n = 4, KL off): for each prompt, n on-policy
   samples; reward 1 if the Reasoning Gym scorer accepts the parsed answer; advantage r_i minus the
   mean of the other n-1 rewards; the answer is read by the strict rule the notebook scores with
   (:func:`workbench.rsa.answers.strict_answer`, the authors' extraction), so an untagged answer earns 0; loss -A_i * (sum of the completion's token log-probs) / tokens.
   Completions are re-tokenised from their text for the log-prob pass (reconstruction: the backend
   returns text, not token ids; the two agree for this tokenizer on plain text).
   Partial fine-tuning (CPU-scale choice, ``--train-layers``): only the top decoder layers and the
   final norm are trained, the paper fine-tunes the whole model. Sequences of one update go through
   the model as one right-padded batch.
4. Evaluation before and after: RSA (N=4, K=2, T=3, the notebook's default problems and seed) with the
   in-memory model, mean accuracy per step.

The checkpoint (safetensors + tokenizer) goes to ``--out``; the notebook loads it as
``transformers:<out>``. ``--time-budget-min`` bounds the run: the warm start stops at 45% of it, RL at 90%
(the run reports how many steps each stage made). ``--eval-only --backend transformers:checkpoints/rsa_agg --eval-problems 30`` evaluates a
saved checkpoint (or ``--backend transformers``, the base model) on more problems than the in-run check.

Run: ``python scripts/train_rsa_aggregation.py --out checkpoints/rsa_agg`` (``make train-rsa``).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="aggregation-aware training of the embedded model (RLOO)")
    ap.add_argument("--out", default="checkpoints/rsa_agg", help="output directory of the checkpoint")
    ap.add_argument("--backend", default="default",
                    help="base model spec on the transformers engine ('transformers' = the embedded model): "
                         "training updates its PyTorch weights in place")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--train-problems", type=int, default=24, help="training problems (the notebook's default task)")
    ap.add_argument("--train-task-seed", type=int, default=1000, help="generator seed of the training problems")
    ap.add_argument("--k", type=int, default=2, help="candidates per aggregation prompt")
    ap.add_argument("--pool", type=int, default=4, help="base-model candidates sampled per training problem")
    ap.add_argument("--sets", type=int, default=2, help="aggregation prompts per training problem")
    ap.add_argument("--sft-steps", type=int, default=16, help="supervised warm-start steps (0 = none)")
    ap.add_argument("--sft-batch", type=int, default=4)
    ap.add_argument("--sft-lr", type=float, default=1e-4)
    ap.add_argument("--rl-steps", type=int, default=40, help="RLOO updates (the time budget usually stops earlier)")
    ap.add_argument("--rl-prompts", type=int, default=2, help="prompts per RLOO update")
    ap.add_argument("--rollouts", type=int, default=4, help="RLOO samples per prompt (paper: 4)")
    ap.add_argument("--rl-lr", type=float, default=2e-5)
    ap.add_argument("--train-layers", type=int, default=8,
                    help="train only the top N decoder layers and the final norm (0 = all parameters); "
                         "CPU-scale choice, the paper fine-tunes the whole model")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--eval-problems", type=int, default=0, help="evaluation problems (0 = the notebook's default number)")
    ap.add_argument("--structured", choices=("on", "off"), default="on",
                    help="reason-then-answer structured outputs, as the notebook's default for the embedded model")
    ap.add_argument("--time-budget-min", type=float, default=15.0, help="stop RL when the whole run passes this")
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (0 = torch's default); use 1 on a CPU shared with other jobs, where "
                         "torch's spinning worker threads slow down many-fold")
    ap.add_argument("--eval-only", action="store_true",
                    help="only evaluate --backend (e.g. transformers:checkpoints/rsa_agg) with RSA; no training")
    return ap.parse_args(argv)


def eval_config(args):
    """The notebook's default RSA configuration, with ``--eval-problems`` problems when given."""
    from workbench.rsa import Config

    base = Config()
    return Config(task=base.task, task_config=base.task_config, task_seed=base.task_seed,
                  n_problems=args.eval_problems or base.n_problems, structured=args.structured)


def sampling_params(args, task, problems):
    from workbench.llm import SamplingParams
    from workbench.rsa.answers import answer_structure

    cfg = eval_config(args)
    st = (answer_structure(task, problems, cfg.max_reasoning_chars, cfg.answer_pattern, cfg.reasoning)
          if args.structured == "on" else None)
    return SamplingParams(temperature=args.temperature, max_tokens=args.max_new_tokens, structure=st)


def training_task(args):
    """Training problems of the notebook's task from ``--train-task-seed``, none sharing a question with
    the notebook's evaluation problems (the default set and the ``--eval-problems`` set)."""
    from workbench.rsa import Config, make_task
    from workbench.rsa.training_data import disjoint_problems

    ev = eval_config(args)
    held_out = list(make_task(ev).problems)
    if ev.n_problems != Config().n_problems:
        held_out += make_task(Config()).problems
    cand = make_task(Config(task=ev.task, task_config=ev.task_config, task_seed=args.train_task_seed,
                            n_problems=4 * args.train_problems + len(held_out)))
    cand.problems = disjoint_problems(cand.problems, held_out, args.train_problems)
    return cand, held_out


def evaluate(llm, args, label):
    from workbench.rsa import make_task, run_rsa

    cfg = eval_config(args)
    task = make_task(cfg)
    r = run_rsa(llm, task, n=4, k=2, t=3, sampling=sampling_params(args, task, task.problems),
                seed=cfg.seed, label=label, progress=False)
    accs = [round(s["mean_acc"], 3) for s in r["steps"]]
    maj = [round(s["majority_acc"], 3) for s in r["steps"]]
    print(f"[eval {label}] RSA N=4 K=2 T=3 mean_acc per step {accs}, majority_acc {maj}", flush=True)
    return {"mean_acc": accs, "majority_acc": maj}


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.time()
    import torch

    from workbench.llm import SamplingParams, load_llm
    from workbench.rsa import generate_initial, load_templates
    from workbench.rsa.answers import strict_answer
    from workbench.rsa.training_data import aggregation_rows
    from workbench.seeding import derive_seed

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rnd = random.Random(args.seed)
    llm = load_llm(args.backend, cache="off")  # the model changes during training: never cache
    if not hasattr(llm, "lm"):
        raise SystemExit(f"--backend {args.backend!r} has no PyTorch model to train; use a transformers spec "
                         "('transformers' for the embedded model, or 'transformers:<dir or hub id>')")
    model, tok = llm.lm, llm.tokenizer
    report = {"args": vars(args)}
    if args.eval_only:
        report["eval"] = evaluate(llm, args, args.backend)
        print(json.dumps(report["eval"]), flush=True)
        return report
    if not args.skip_eval:
        report["before"] = evaluate(llm, args, "base")

    # 1. data ------------------------------------------------------------------------------
    task, held_out = training_task(args)
    tmpl = load_templates()
    sp = sampling_params(args, task, task.problems)
    pool = generate_initial(llm, task, task.problems, args.pool, sp, seed=args.seed, templates=tmpl, threshold=1.0)
    rows = aggregation_rows(task, task.problems, pool, k=args.k, sets_per_problem=args.sets, seed=args.seed, templates=tmpl)
    by_id = {p.id: p for p in task.problems}
    base_acc = sum(c["correct"] for row in pool for c in row) / sum(len(row) for row in pool)
    print(f"[data] {len(rows)} aggregation prompts from {len(task)} problems; base single-sample acc {base_acc:.3f} "
          f"({time.time() - t_start:.0f} s)", flush=True)
    report["data"] = {"rows": len(rows), "base_single_sample_acc": base_acc, "held_out_questions": len(held_out),
                      "train_problem_ids": [p.id for p in task.problems]}

    def prompt_ids(row):
        return llm.render(row["prompt"])

    def seq_logprobs(pairs):
        """Summed log-prob of each completion given its prompt, one right-padded forward for the batch."""
        lens = [len(p) + len(c) for p, c in pairs]
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        ids = torch.full((len(pairs), max(lens)), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, (p, c) in enumerate(pairs):
            ids[i, :lens[i]] = torch.tensor(p + c)
            mask[i, :lens[i]] = 1
        lp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
        tok_lp = lp.gather(2, ids[:, 1:, None])[..., 0]  # (B, L-1): log-prob of token t+1
        out = []
        for i, (p, c) in enumerate(pairs):
            out.append(tok_lp[i, len(p) - 1:len(p) - 1 + len(c)].sum())  # the completion's tokens only
        return torch.stack(out)

    # Partial fine-tuning (CPU-scale choice, labelled): the bottom layers and the (tied) embeddings stay
    # frozen, so autograd keeps no activations for them and the backward pass stops at the first
    # trainable layer.
    if args.train_layers:
        layers = model.model.layers
        model.requires_grad_(False)
        for layer in layers[len(layers) - args.train_layers:]:
            layer.requires_grad_(True)
        model.model.norm.requires_grad_(True)
    trainable = [q for q in model.parameters() if q.requires_grad]
    n_train = sum(q.numel() for q in trainable)
    print(f"[model] training {n_train / 1e6:.1f}M of {sum(q.numel() for q in model.parameters()) / 1e6:.1f}M "
          f"parameters ({args.train_layers or 'all'} top layers)", flush=True)
    report["trainable_params"] = n_train
    budget_s = args.time_budget_min * 60

    model.train()
    # 2. supervised warm start (labelled): templated correct aggregations from the gold answer ------
    if args.sft_steps:
        opt = torch.optim.AdamW(trainable, lr=args.sft_lr)
        losses = []
        for step in range(args.sft_steps):
            if time.time() - t_start > 0.45 * budget_s:
                print(f"[sft] time budget for the warm start reached after {step} steps", flush=True)
                break
            batch = rnd.sample(rows, min(args.sft_batch, len(rows)))
            opt.zero_grad()
            pairs = []
            for r in batch:
                gold = r["answer"]
                # a target the run's structure allows (calculation form: digits, '=', the tagged answer)
                target = (f"{gold} = <answer>{gold}</answer>" if sp.structure is not None and eval_config(args).reasoning == "calculation"
                          else f"The correct result is {gold}. <answer>{gold}</answer>")
                c_ids = tok(target, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
                pairs.append((prompt_ids(r), c_ids))
            lp = seq_logprobs(pairs)
            loss = -(lp / torch.tensor([len(c) for _, c in pairs])).mean()  # per-token NLL, averaged over the batch
            loss.backward()
            opt.step()
            losses.append(loss.item())
            print(f"[sft] step {step} loss {losses[-1]:.3f} ({time.time() - t_start:.0f} s)", flush=True)
        report["sft_steps_done"] = len(losses)
        report["sft_loss"] = losses

    # 3. RLOO ----------------------------------------------------------------------------------
    opt = torch.optim.AdamW(trainable, lr=args.rl_lr)
    rewards_log, done = [], 0
    for step in range(args.rl_steps):
        if time.time() - t_start > 0.9 * budget_s:
            print(f"[rl] time budget reached after {done} updates", flush=True)
            break
        batch = rnd.sample(rows, min(args.rl_prompts, len(rows)))
        model.eval()
        with torch.no_grad():
            comps = llm.generate([r["prompt"] for r in batch], sp.replace(n=args.rollouts),
                                 seeds=[derive_seed(args.seed, "rl", step, i) for i in range(len(batch))])
        model.train()
        opt.zero_grad()
        rs, pairs, advs = [], [], []
        for i, r in enumerate(batch):
            p = by_id[r["extra_info"]["problem_id"]]
            group = comps[i * args.rollouts:(i + 1) * args.rollouts]
            answers = [strict_answer(task, c.text, p)[0] for c in group]  # the strict rule, as scored
            rew = [task.score(a, p) if a is not None else 0.0 for a in answers]
            rs += rew
            p_ids = prompt_ids(r)
            for j, c in enumerate(group):
                adv = rew[j] - (sum(rew) - rew[j]) / (args.rollouts - 1)  # RLOO baseline
                c_ids = tok(c.text, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if c.finish_reason == "stop" else [])
                if adv != 0 and c_ids:  # zero advantage: no gradient, skip the forward pass
                    pairs.append((p_ids, c_ids))
                    advs.append(adv)
        if pairs:
            lp = seq_logprobs(pairs) / torch.tensor([len(c) for _, c in pairs])
            loss = -(torch.tensor(advs) * lp).sum() / (len(batch) * args.rollouts)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
        done += 1
        rewards_log.append(sum(rs) / len(rs))
        print(f"[rl] step {step} mean reward {rewards_log[-1]:.3f}, {len(pairs)} sequences with non-zero advantage "
              f"({time.time() - t_start:.0f} s)", flush=True)
    report["rl_updates"] = done
    report["rl_mean_reward"] = rewards_log
    model.eval()

    out = Path(args.out)
    out = out if out.is_absolute() else ROOT / out
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    print(f"[save] checkpoint written to {out}", flush=True)
    if not args.skip_eval:
        report["after"] = evaluate(llm, args, "tuned")
    report["wall_s"] = round(time.time() - t_start, 1)
    (out / "training_report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: report[k] for k in ("before", "after", "rl_updates", "wall_s") if k in report}), flush=True)
    return report


if __name__ == "__main__":
    main()
