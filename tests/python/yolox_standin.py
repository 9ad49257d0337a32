"""A stand-in for Megvii YOLOX's ``YOLOXHead`` and ``YOLOX`` model, written
here for the tests of ``yoloxloss.yolox``.

It has the attributes the switch relies on (``stems``, ``cls_convs``,
``reg_convs``, ``cls_preds``, ``reg_preds``, ``obj_preds``, ``strides``,
``use_l1``, ``num_classes``, ``iou_loss.loss_type``) and the forward contract
of the official head: in training, ``forward(xin, labels, imgs)``
concatenates each level's reg | obj | cls outputs and returns the loss
6-tuple ``(loss, iou, obj, cls, l1, num_fg / num_gts)`` with ``l1`` the
number 0.0 without the L1 term and the last entry a Python number; in eval
mode it returns the decoded ``[B, anchors, 5 + C]`` predictions (boxes in
pixels, sigmoid scores). The loss is this project's PyTorch reference
(tests/reference/yolox_reference.py), so the switched head is checked
against an independent implementation. The layers are smaller than
YOLOX's (one 3x3 convolution per branch) but wired the same way.
"""

import torch
from torch import nn

import repo_paths  # noqa: F401  (puts tests/reference on sys.path)
from yolox_reference import yolox_loss_reference


class IouLossSetting(nn.Module):
    """Where YOLOX keeps the box loss's kind: ``head.iou_loss.loss_type``."""

    def __init__(self, loss_type="iou"):
        super().__init__()
        self.loss_type = loss_type


class StandInHead(nn.Module):
    def __init__(self, num_classes, in_channels=(8, 16, 32), width=16, strides=(8, 16, 32),
                 assigner="yolox"):
        super().__init__()
        self.num_classes = num_classes
        self.strides = list(strides)
        self.use_l1 = False
        self.assigner = assigner  # the rule the stand-in's own loss uses
        self.iou_loss = IouLossSetting("iou")
        self.stems = nn.ModuleList()
        self.cls_convs = nn.ModuleList()
        self.reg_convs = nn.ModuleList()
        self.cls_preds = nn.ModuleList()
        self.reg_preds = nn.ModuleList()
        self.obj_preds = nn.ModuleList()
        for c in in_channels:
            self.stems.append(nn.Sequential(nn.Conv2d(c, width, 1), nn.SiLU()))
            self.cls_convs.append(nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.SiLU()))
            self.reg_convs.append(nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.SiLU()))
            self.cls_preds.append(nn.Conv2d(width, num_classes, 1))
            self.reg_preds.append(nn.Conv2d(width, 4, 1))
            self.obj_preds.append(nn.Conv2d(width, 1, 1))
        for conv in list(self.cls_preds) + list(self.obj_preds):
            nn.init.constant_(conv.bias, -4.6)  # YOLOX's prior of 0.01

    def level_outputs(self, xin):
        out = []
        for k, x in enumerate(xin):
            x = self.stems[k](x)
            cls_output = self.cls_preds[k](self.cls_convs[k](x))
            reg_feat = self.reg_convs[k](x)
            out.append((self.reg_preds[k](reg_feat), self.obj_preds[k](reg_feat), cls_output))
        return out

    def forward(self, xin, labels=None, imgs=None):
        levels = self.level_outputs(xin)
        if self.training:
            outputs = [torch.cat(level, 1) for level in levels]
            loss, iou, obj, cls, l1, ratio = yolox_loss_reference(
                outputs, labels, self.strides, self.assigner, iou_loss=self.iou_loss.loss_type,
                use_l1=self.use_l1)
            return loss, iou, obj, cls, (l1 if self.use_l1 else 0.0), float(ratio)
        decoded = []
        for (reg, obj, cls), stride in zip(levels, self.strides):
            b, _, h, w = reg.shape
            ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            grid = torch.stack((xs, ys), 0).to(reg.dtype).view(1, 2, h, w)
            boxes = torch.cat([(reg[:, :2] + grid) * stride, torch.exp(reg[:, 2:4]) * stride], 1)
            level = torch.cat([boxes, obj.sigmoid(), cls.sigmoid()], 1)
            decoded.append(level.flatten(start_dim=2))
        return torch.cat(decoded, 2).permute(0, 2, 1)


class StandInModel(nn.Module):
    """YOLOX's model shape: a backbone, then ``self.head``; training returns
    the dict of losses YOLOX's trainer reads."""

    def __init__(self, head, in_channels=(8, 16, 32), strides=(8, 16, 32)):
        super().__init__()
        self.backbone = nn.ModuleList(
            nn.Conv2d(3, c, kernel_size=s, stride=s) for c, s in zip(in_channels, strides))
        self.head = head

    def forward(self, x, targets=None):
        fpn_outs = [layer(x) for layer in self.backbone]
        if self.training:
            loss, iou_loss, conf_loss, cls_loss, l1_loss, num_fg = self.head(fpn_outs, targets, x)
            return {"total_loss": loss, "iou_loss": iou_loss, "l1_loss": l1_loss,
                    "conf_loss": conf_loss, "cls_loss": cls_loss, "num_fg": num_fg}
        return self.head(fpn_outs)
