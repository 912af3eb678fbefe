"""CUDA smoke check of wt_model (run on a GPU machine): both models and attentions under bf16 autocast,
naive vs sdpa in fp32, evaluation and generation on the device."""

from __future__ import annotations

import torch

from wt_model import ModelConfig, build_model, evaluate_batch, generate


def main() -> None:
    device = torch.device("cuda")
    torch.manual_seed(0)
    x = torch.randint(0, 65, (4, 257), device=device)
    y = torch.randint(0, 65, (4, 257), device=device)
    for arch in ("standard", "worker"):
        base = ModelConfig(arch=arch, block_size=512, dropout=0.0, attention="naive")
        naive = build_model(base).to(device)
        sdpa = build_model(ModelConfig(**{**base.__dict__, "attention": "sdpa"})).to(device)
        sdpa.load_state_dict(naive.state_dict())
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        ln, loss_n = naive(x, y)
        ls, loss_s = sdpa(x, y)
        loss_n.backward()
        loss_s.backward()
        pairs = zip(naive.parameters(), sdpa.parameters(), strict=True)
        grad_diff = max((a.grad - b.grad).abs().max().item() for a, b in pairs)
        print(f"{arch}: fp32 naive vs sdpa logits max diff {(ln - ls).abs().max().item():.2e}, grads {grad_diff:.2e}")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, loss = build_model(ModelConfig(arch=arch, block_size=512)).to(device).train()(x, y)
        loss.backward()
        sdpa.eval()
        losses = evaluate_batch(sdpa, x, y)
        out = generate(sdpa, x[:1, :8], 16, top_k=5, generator=torch.Generator(device).manual_seed(0))
        print(f"{arch}: bf16 train loss {loss.item():.3f}; eval {losses}; generated {tuple(out.shape)}")


if __name__ == "__main__":
    main()
