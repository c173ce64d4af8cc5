"""Audio -> expression + head pose (the original's ATC-net, docs/method.md, "Audio to motion").

network.py    AudioToMotion: per-frame CNN on 28x12 MFCC windows, 3-layer LSTM, 70 outputs;
              target encoding (translation z shift, optional per-dimension statistics)
losses.py     MSE on expression and pose plus temporal smoothness
windows.py    16-frame training sequences: one random per LRW clip, all overlapping for a person
inference.py  streamed prediction over long audio and the pose / expression controls
activity.py   per-frame speech activity of the audio, the gate of the sampled head rhythm
"""
