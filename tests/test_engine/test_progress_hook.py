"""mmdyt.engine.hooks.ProgressHook follows a real Runner's iterations."""
import io

from mmdyt.engine.hooks import ProgressHook
from mmdyt.utils.progress import ProgressBar, quiet_logs


def test_progress_hook_follows_a_runner(tmp_path):
    """A real mmengine Runner (toy model, 2 epochs x 3 iterations, a
    validation, then a test): one bar per phase, counted steps."""
    import torch
    from mmengine.evaluator import BaseMetric
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Toy(BaseModel):

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, y=None, mode='tensor'):
            x = torch.stack(x) if isinstance(x, list) else x
            if mode == 'loss':
                return dict(loss=((x * self.w - 1)**2).mean())
            return [dict(pred=v) for v in (x * self.w)]

    class Count(BaseMetric):

        def process(self, data_batch, data_samples):
            self.results.extend(data_samples)

        def compute_metrics(self, results):
            return dict(n=float(len(results)))

    data = [dict(x=torch.ones(1)) for _ in range(6)]
    loader = dict(
        dataset=data,
        batch_size=2,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'))
    stream = io.StringIO()
    hook = ProgressHook('[1/1] toy', stream=stream, live=False)
    steps = []
    orig = ProgressBar.update

    def update(self, n=1, **info):
        steps.append(dict(info))
        orig(self, n, **info)

    with quiet_logs(str(tmp_path / 'log.txt')):
        runner = Runner(
            model=Toy(),
            work_dir=str(tmp_path),
            train_dataloader=loader,
            val_dataloader=loader,
            test_dataloader=loader,
            val_evaluator=[Count()],
            test_evaluator=[Count()],
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
            train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=2),
            val_cfg=dict(),
            test_cfg=dict(),
            default_hooks=dict(checkpoint=None),
            custom_hooks=[hook])
        try:
            ProgressBar.update = update
            runner.train()
            train_steps = list(steps)
            runner.test()
        finally:
            ProgressBar.update = orig
    assert [s['epoch'] for s in train_steps] == ['1/2'] * 3 + ['2/2'] * 3
    assert all('loss' in s for s in train_steps)
    assert len(steps) == 6 + 3  # then 3 test batches
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith('[1/1] toy  done in') and 'val n 6.00' in \
        lines[0]
    assert lines[1].startswith('[1/1] toy  done in')
    assert set(hook.seconds) == {'train', 'test'}
