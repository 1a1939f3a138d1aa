# Demo step 2, with mmdyt's optional learnable per-frame embedding in the
# pooling head (not the paper: there the pooled frames are a set, with no
# temporal position, so the order of the frames is invisible).
_base_ = ['./dyt_vit-tiny-p8_frames_digits5-9.py']
model = dict(cls_head=dict(frame_embed=True))
