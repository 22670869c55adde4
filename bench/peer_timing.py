"""peer_timing.py - how the PyTorch network peers (peer_iqnet_torch.py,
peer_resnet_torch.py) time a network: the same step as cbq_train_step (or
an eval-mode forward) and the same warm-up and stopping rule as the C side."""
import time

import torch
import torch.nn as nn


def make_step(net, x, y, train):
    """Puts net in training (train) or eval mode and returns one step: zero_grad,
    forward, MSE loss, backward, Adam step (lr 1e-3); or a forward under no_grad."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.MSELoss()

    def step():
        if train:
            opt.zero_grad()
            loss_fn(net(x), y).backward()
            opt.step()
        else:
            with torch.no_grad():
                net(x)

    net.train(train)
    return step


def time_steps(step, batch, min_steps, min_s):
    """One untimed warm-up step (allocations, oneDNN primitive creation), then
    at least min_steps steps and min_s seconds; prints the line the C side reads."""
    step()
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        step()
        n += 1
        el = time.perf_counter() - t0
        if n >= min_steps and el >= min_s:
            break
    cpu = time.process_time() - c0
    print("slices_per_s %.4f cpu_ms_per_slice %.4f" % (n * batch / el, 1e3 * cpu / (n * batch)))
